"""`human3r doctor`: check what inference needs and say exactly what is missing and how to get it.

Checks: Python packages, torch and the compute device (CUDA name and memory), the checkpoint
(found, readable by the checkpoint module, sha256), the SMPL-X file (found, loadable), and whether
the server port (127.0.0.1:5555 by default) is free. Exit status 1 if something required is
missing (packages, checkpoint, SMPL-X); a busy port is only a warning (a server may be running).
"""
from __future__ import annotations

import argparse
import importlib
import socket
import sys

from backend.cli.common import EXIT_FAILED, EXIT_OK
from backend.model_files import SmplxNotFoundError, how_to_get_checkpoint, resolve_checkpoint_path

REQUIRED_PACKAGES = ("torch", "numpy", "smplx", "av", "PIL", "msgpack", "zmq", "safetensors")
OPTIONAL_PACKAGES = ("tqdm",)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default=None, help="checkpoint to check (default: the standard location)")
    parser.add_argument("--smplx", default=None, help="SMPL-X file or folder to check")
    parser.add_argument("--port", type=int, default=5555, help="server port to check on 127.0.0.1 (default 5555)")
    parser.add_argument("--quick", action="store_true",
                        help="only check that the checkpoint exists (skip reading it and its sha256)")


class _Report:
    def __init__(self) -> None:
        self.missing: list[str] = []

    def ok(self, what: str, detail: str) -> None:
        print(f"[ ok ] {what}: {detail}")

    def warn(self, what: str, detail: str) -> None:
        print(f"[warn] {what}: {detail}")

    def fail(self, what: str, detail: str) -> None:
        print(f"[MISSING] {what}: {detail}")
        self.missing.append(what)


def _check_packages(report: _Report) -> None:
    for name in REQUIRED_PACKAGES + OPTIONAL_PACKAGES:
        try:
            mod = importlib.import_module(name)
            report.ok(f"package {name}", getattr(mod, "__version__", "installed"))
        except Exception as exc:  # ImportError or a broken install
            if name in OPTIONAL_PACKAGES:
                report.warn(f"package {name}", f"not installed ({exc}); `pip install {name}` for progress bars")
            else:
                report.fail(f"package {name}", f"cannot import ({exc}); run scripts/setup.sh, or `pip install -e .` in the project checkout")


def _check_device(report: _Report) -> None:
    try:
        import torch
    except Exception:
        return
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            report.ok(f"device cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.1f} GiB, "
                                          f"CUDA {torch.version.cuda}")
    else:
        build = "CPU-only torch build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build, no GPU visible"
        report.warn("device", f"no CUDA GPU ({build}); inference runs on the CPU (slow for the full model)")


def _check_checkpoint(report: _Report, path_arg: str | None, quick: bool) -> None:
    path = resolve_checkpoint_path(path_arg)
    if not path.is_file():
        report.fail("checkpoint", how_to_get_checkpoint(path))
        return
    if quick:
        report.ok("checkpoint", f"{path} ({path.stat().st_size / 1e9:.2f} GB; not read, --quick)")
        return
    try:
        from backend.model.checkpoint import read_checkpoint

        loaded = read_checkpoint(path)
        cfg = loaded.config
        report.ok("checkpoint", f"{path} ({loaded.source_format}, {len(loaded.state_dict)} tensors, "
                                f"DINOv2 {cfg.backbone.name} at {cfg.mhmr_img_res} px), sha256 {loaded.digest}")
    except Exception as exc:
        report.fail("checkpoint", f"{path} cannot be used: {exc}")


def _check_smplx(report: _Report, path_arg: str | None) -> None:
    from backend.smplx_model import BodyModel

    try:
        body = BodyModel.load(path_arg)
        report.ok("SMPL-X model", f"{body.path} ({body.layer.v_template.shape[0]} vertices)")
    except SmplxNotFoundError as exc:
        report.fail("SMPL-X model", str(exc))
    except Exception as exc:
        report.fail("SMPL-X model", f"cannot load: {exc}")


def _check_port(report: _Report, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
            report.ok("server port", f"127.0.0.1:{port} is free")
        except OSError as exc:
            report.warn("server port", f"127.0.0.1:{port} is in use ({exc.strerror}); a human3r server may already "
                                       "run there, or start one with `human3r serve --bind tcp://127.0.0.1:OTHER`")


def run(args: argparse.Namespace) -> int:
    report = _Report()
    print(f"Python {sys.version.split()[0]} at {sys.executable}")
    _check_packages(report)
    _check_device(report)
    _check_checkpoint(report, args.checkpoint, args.quick)
    _check_smplx(report, args.smplx)
    _check_port(report, args.port)
    if report.missing:
        print(f"\nmissing: {', '.join(report.missing)} — see the lines marked [MISSING] above.")
        return EXIT_FAILED
    print("\neverything needed for inference is in place.")
    return EXIT_OK
