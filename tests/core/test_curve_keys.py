"""The one reader of CurveZMQ key files (server, remote command line, add-on)."""
from __future__ import annotations

import pytest

from blender_addon.client.curve_keys import read_key_file, read_keypair

PUBLIC, SECRET = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7", "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"


def test_public_and_secret_files(tmp_path):
    pair = tmp_path / "client.key_secret"
    pair.write_text(f'metadata\ncurve\n    public-key = "{PUBLIC}"\n    secret-key = "{SECRET}"\n')
    public = tmp_path / "client.key"
    public.write_text(f'metadata\ncurve\n    public-key = "{PUBLIC}"\n')
    assert read_key_file(pair) == (PUBLIC, SECRET) and read_keypair(pair) == (PUBLIC, SECRET)
    assert read_key_file(public) == (PUBLIC, None)
    with pytest.raises(ValueError, match="not a CurveZMQ key pair"):
        read_keypair(public)


def test_bad_files_say_what_to_use(tmp_path):
    (tmp_path / "bad.key").write_text("nothing here")
    with pytest.raises(ValueError, match="human3r keys"):
        read_key_file(tmp_path / "bad.key")
    with pytest.raises(ValueError, match="Cannot read the key file"):
        read_key_file(tmp_path / "missing.key")
