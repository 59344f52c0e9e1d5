"""`human3r doctor` and `human3r download` (offline behaviour)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from backend.cli import main
from backend.model_files import CHECKPOINT_ENV, SMPLX_ENV

REPO = Path(__file__).resolve().parents[2]


def test_doctor_all_present(parity_fixture_dir, synthetic_smplx_path, capsys):
    code = main(["doctor", "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"),
                 "--smplx", str(synthetic_smplx_path), "--quick"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "[ ok ] checkpoint" in out and "[ ok ] SMPL-X model" in out and "server port" in out


def test_doctor_reads_checkpoint_and_reports_digest(parity_fixture_dir, synthetic_smplx_path, capsys):
    code = main(["doctor", "--checkpoint", str(parity_fixture_dir / "checkpoint.pth"),
                 "--smplx", str(synthetic_smplx_path)])
    out = capsys.readouterr().out
    assert code == 0 and "sha256 " in out


def test_doctor_says_what_is_missing(tmp_path, capsys):
    with socket.socket() as busy:  # a busy port is a warning, not a failure
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code = main(["doctor", "--checkpoint", str(tmp_path / "human3r.pth"), "--smplx", str(tmp_path / "x"),
                     "--port", str(port)])
    out = capsys.readouterr().out
    assert code == 1
    assert "[MISSING] checkpoint" in out and "human3r download" in out
    assert "[MISSING] SMPL-X model" in out and "https://smpl-x.is.tue.mpg.de" in out
    assert f"[warn] server port: 127.0.0.1:{port} is in use" in out


def test_download_fails_fast_offline(tmp_path, capsys):
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    t0 = time.monotonic()
    code = main(["download", "--dest", str(tmp_path / "human3r.pth"), "--url", f"http://127.0.0.1:{port}/human3r.pth",
                 "--timeout", "2"])
    captured = capsys.readouterr()
    assert code == 1 and time.monotonic() - t0 < 10
    assert "could not download the checkpoint" in captured.err and "huggingface.co/faneggg/human3r" in captured.err
    assert not (tmp_path / "human3r.pth").exists()
    assert "smpl-x.is.tue.mpg.de" in captured.out  # the SMPL-X registration is explained either way


def test_download_skips_existing(tmp_path, capsys):
    dest = tmp_path / "human3r.pth"
    dest.write_bytes(b"x")
    assert main(["download", "--dest", str(dest)]) == 0
    assert "already present" in capsys.readouterr().out


def test_download_from_a_local_server(tmp_path, capsys):
    import functools
    import hashlib
    import http.server
    import threading

    served = tmp_path / "srv"
    served.mkdir()
    payload = bytes(range(256)) * 5000
    (served / "human3r.pth").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        dest = tmp_path / "out" / "human3r.pth"
        dest.parent.mkdir()
        (dest.parent / "human3r.pth.part").write_bytes(b"stale partial data")  # server ignores Range: restart
        url = f"http://127.0.0.1:{server.server_address[1]}/human3r.pth"
        assert main(["download", "--dest", str(dest), "--url", url]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert dest.read_bytes() == payload and not (dest.parent / "human3r.pth.part").exists()
    assert hashlib.sha256(payload).hexdigest() in capsys.readouterr().out


def _run_isolated(code: str, home: Path, **env) -> subprocess.CompletedProcess:
    """Run Python `code` in a fresh interpreter with HOME=`home` and no checkpoint/SMPL-X variables."""
    environ = {k: v for k, v in os.environ.items() if k not in (CHECKPOINT_ENV, SMPLX_ENV)}
    environ.update(HOME=str(home), PYTHONPATH=str(REPO), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=environ, capture_output=True,
                          text=True, timeout=120)


def test_doctor_and_download_import_neither_torch_nor_the_engine(tmp_path):
    # `download` runs whole without them; `doctor` only imports torch to report it, never the engine
    (tmp_path / "human3r.pth").write_bytes(b"x")
    result = _run_isolated(f"""
        import sys
        import backend.cli.doctor, backend.cli.download
        assert "torch" not in sys.modules, "importing the commands loaded torch"
        from backend.cli import main
        assert main(["download", "--dest", {str(tmp_path / "human3r.pth")!r}]) == 0
        assert "torch" not in sys.modules, "download loaded torch"
        main(["doctor", "--checkpoint", {str(tmp_path / "human3r.pth")!r}, "--quick", "--port", "0"])
        # (the parser of `infer` reads its flags from backend.engine.options, which is plain Python)
        engine = sorted(m for m in sys.modules if (m == "backend.model" or m.startswith(("backend.engine.", "backend.model.")))
                        and m != "backend.engine.options")
        assert not engine, engine
        print("ISOLATED OK")
    """, tmp_path)
    assert "ISOLATED OK" in result.stdout, result.stdout + result.stderr


def test_download_and_infer_share_one_checkpoint_location(tmp_path):
    # only a converted checkpoint at the default place: that is what infer loads, so nothing to download
    cache = tmp_path / ".cache" / "human3r"
    cache.mkdir(parents=True)
    (cache / "human3r.safetensors").write_bytes(b"x")
    result = _run_isolated("""
        from backend.cli import main
        from backend.model_files import resolve_checkpoint_path
        print("RESOLVED", resolve_checkpoint_path())
        raise SystemExit(main(["download", "--url", "http://127.0.0.1:9/never-asked"]))
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"RESOLVED {cache / 'human3r.safetensors'}" in result.stdout
    assert f"checkpoint already present: {cache / 'human3r.safetensors'}" in result.stdout
    # $HUMAN3R_CHECKPOINT names the one file, for both
    named = tmp_path / "named.pth"
    result = _run_isolated("""
        from backend.cli import main
        from backend.model_files import resolve_checkpoint_path
        print("RESOLVED", resolve_checkpoint_path())
        raise SystemExit(main(["download", "--url", "http://127.0.0.1:9/never-asked", "--timeout", "2"]))
    """, tmp_path, **{CHECKPOINT_ENV: str(named)})
    assert result.returncode == 1 and f"RESOLVED {named}" in result.stdout and f"-> {named}" in result.stdout
