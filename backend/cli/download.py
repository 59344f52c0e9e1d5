"""`human3r download`: fetch the official Human3R checkpoint and explain how to get SMPL-X.

The checkpoints come from the Human3R release on Hugging Face (`faneggg/human3r`): the released
model `human3r_896L.pth` (DINOv2 ViT-L at 896 px, about 4.7 GB; the first release called it
`human3r.pth`) and the faster variants `human3r_672S.pth` / `_672B` / `_672L` (`--variant`). All load
with the same code: sizes are read from the checkpoint. The download goes to `<dest>.part` and resumes from there (HTTP
Range) if interrupted; only a complete file is renamed into place, and its sha256 is printed.
Without network access it fails within a few seconds with a clear message.

SMPL-X cannot be downloaded automatically (per-user licence); the command prints the steps.
Exit status: 0 checkpoint present (where `infer` looks for it) or downloaded; 1 download failed.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from backend.cli.common import EXIT_FAILED, EXIT_OK
from backend.model_files import (
    CHECKPOINT_ENV, DEFAULT_CHECKPOINT, SmplxNotFoundError, configured_checkpoint_path, how_to_get_smplx,
    resolve_checkpoint_path, resolve_smplx_path,
)

HF_REPO = "faneggg/human3r"
VARIANTS = {"896L": "human3r_896L.pth", "672L": "human3r_672L.pth", "672B": "human3r_672B.pth",
            "672S": "human3r_672S.pth"}
DEFAULT_VARIANT = "896L"


def checkpoint_url(variant: str = DEFAULT_VARIANT) -> str:
    return f"https://huggingface.co/{HF_REPO}/resolve/main/{VARIANTS[variant]}"


CHECKPOINT_URL = checkpoint_url()
CONNECT_TIMEOUT_S = 5.0
CHUNK = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dest", default=None,
                        help=f"where to save the checkpoint (default: ${CHECKPOINT_ENV} or {DEFAULT_CHECKPOINT})")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default=DEFAULT_VARIANT,
                        help="which released model (default 896L, the paper's main model; 672S is the fast one)")
    parser.add_argument("--url", default=None, help=f"download URL (default: the variant's file, {CHECKPOINT_URL})")
    parser.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT_S,
                        help="network timeout in seconds (default 5)")
    parser.add_argument("--force", action="store_true", help="download even if the file already exists")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def download(url: str, dest: Path, timeout: float = CONNECT_TIMEOUT_S, quiet: bool = False) -> str:
    """Download `url` to `dest` via `dest.part` (resumed if present); return the file's sha256.

    Raises:
        OSError / urllib.error.URLError: network or disk failure (the partial file is kept for resuming).
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "human3r-blender"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if have and response.status != 206:  # server ignored the range: start over
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mode = "ab" if have else "wb"
        done, last = have, 0.0
        with open(part, mode) as f:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                done += len(chunk)
                if not quiet and time.monotonic() - last > 1.0:
                    last = time.monotonic()
                    pct = f"{100 * done / total:5.1f}%" if total else ""
                    print(f"\r  {done / 1e6:8.1f} MB {pct}", end="", file=sys.stderr, flush=True)
    if not quiet:
        print(file=sys.stderr)
    if total is not None and part.stat().st_size != total:
        raise OSError(f"incomplete download: {part.stat().st_size} of {total} bytes (run again to resume)")
    digest = _sha256(part)
    os.replace(part, dest)
    return digest


def run(args: argparse.Namespace) -> int:
    dest = Path(args.dest).expanduser() if args.dest else configured_checkpoint_path()
    present = resolve_checkpoint_path(args.dest)  # without --dest: also a converted file `infer` would load
    url = args.url or checkpoint_url(args.variant)
    status = EXIT_OK
    if present.is_file() and not args.force:
        print(f"checkpoint already present: {present} (use --force to download again)")
    else:
        print(f"downloading {url}\n        -> {dest}")
        try:
            digest = download(url, dest, timeout=args.timeout)
            print(f"saved {dest} ({dest.stat().st_size / 1e9:.2f} GB), sha256 {digest}")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            print(f"human3r download: could not download the checkpoint: {reason}", file=sys.stderr)
            print(f"  No network access? Fetch {VARIANTS[args.variant]} on another machine from "
                  f"https://huggingface.co/{HF_REPO} "
                  f"and copy it to {dest} (or pass --checkpoint PATH / set {CHECKPOINT_ENV}).", file=sys.stderr)
            status = EXIT_FAILED
    try:
        print(f"SMPL-X model: found {resolve_smplx_path()}")
    except SmplxNotFoundError:
        print("SMPL-X model: not found.\n" + how_to_get_smplx())
    return status
