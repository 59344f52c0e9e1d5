"""The wire format stays readable: golden messages and a tiny .h3r keep decoding, the spec names its
version, and protocol.py needs nothing beyond stdlib + numpy + msgpack."""
from __future__ import annotations

import json
import subprocess
import sys

import msgpack
import pytest

from blender_addon.core import protocol
from blender_addon.core.resultfile import read_result
from tests.support.scripts import load_script

from .conftest import GOLDEN, REPO

MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())


def _load_goldens_script():
    """The script that writes the goldens (its `describe` is the manifest's definition)."""
    return load_script("make_protocol_goldens")


_describe = _load_goldens_script().describe


@pytest.mark.parametrize("name", sorted(MANIFEST["messages"]))
def test_golden_message_decodes(name):
    frames = msgpack.unpackb((GOLDEN / name).read_bytes(), raw=False)
    msg = protocol.decode(frames)
    assert _describe(msg) == MANIFEST["messages"][name]
    # the encoder still produces the same bytes for the decoded message
    assert [bytes(memoryview(f)) for f in protocol.encode(msg)] == frames


def test_every_message_type_has_a_golden():
    assert {m["type"] for m in MANIFEST["messages"].values()} == {t.value for t in protocol.MessageType}
    assert MANIFEST["protocol_version"] == protocol.PROTOCOL_VERSION


def test_golden_result_file_reads():
    contents = read_result(GOLDEN / "tiny.h3r")
    assert not contents.truncated
    messages = [contents.header, *contents.frames, *contents.tracks, contents.end]
    assert [_describe(m) for m in messages] == MANIFEST["files"]["tiny.h3r"]
    assert contents.frames[1]["people"]["body_pose"].shape == (2, 21, 3)


def test_goldens_are_what_the_script_writes(tmp_path):
    """Regenerating the goldens gives identical bytes (so a change to them is a visible protocol change)."""
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_protocol_goldens.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, timeout=60)
    golden = sorted(p.name for p in GOLDEN.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == golden and "tiny.h3r" in golden  # same set of files
    for name in golden:
        assert (tmp_path / name).read_bytes() == (GOLDEN / name).read_bytes(), name


def test_docstring_names_the_protocol_version():
    first_line = protocol.__doc__.splitlines()[0]
    assert f"version {protocol.PROTOCOL_VERSION}" in first_line


@pytest.mark.timeout(60)
def test_protocol_and_client_import_without_torch_zmq_or_bpy():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "sys.modules['torch'] = None; sys.modules['bpy'] = None; sys.modules['zmq'] = None\n"
        "import blender_addon.core.protocol, blender_addon.core.resultfile\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before if sys.modules[m] is not None}\n"
        "bad = sorted(m for m in new if m not in sys.stdlib_module_names and not m.startswith('_')\n"
        "             and m not in ('numpy', 'msgpack', 'blender_addon', 'cython_runtime'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    # the client package needs pyzmq but never torch or bpy
    code = ("import sys\nsys.modules['torch'] = None; sys.modules['bpy'] = None\n"
            "import blender_addon.client\nassert 'torch' not in [m for m in sys.modules if sys.modules[m]]\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
