"""`human3r export IN.h3r --format amass|camera -o DIR`: SMPL-X files for other tools, no Blender needed.

amass: one `<stem>_person<ID>.npz` per track (see blender_addon/core/export/amass.py for the keys and
the Z-up world); camera: `<stem>_camera.json` and `.npz` (OpenCV intrinsics/extrinsics per frame).
Files are written next to each other in DIR; an unwritable DIR fails before anything is written.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from backend.cli.common import EXIT_USAGE
from blender_addon.core.export.amass import people_motion
from blender_addon.core.export.camera import camera_track, write_camera
from blender_addon.core.resultfile import ResultFileError, read_result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="result file (.h3r) written by `human3r infer` or the add-on")
    parser.add_argument("--format", choices=("amass", "camera"), required=True,
                        help="amass: SMPL-X .npz per person (Z-up world); camera: per-frame K and [R|t] (OpenCV)")
    parser.add_argument("-o", "--output", required=True, help="folder for the files (created if missing)")


def run(args: argparse.Namespace) -> int:
    try:
        result = read_result(args.input)
    except (ResultFileError, OSError) as exc:
        print(f"error: cannot read {args.input}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.header is None or not result.frames:
        print(f"error: {args.input} holds no frames to export", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=out).close()
    except OSError as exc:
        print(f"error: cannot write to {out}: {exc}; pick another folder with -o", file=sys.stderr)
        return EXIT_USAGE
    stem = Path(args.input).stem
    if result.truncated:
        print(f"warning: {args.input} is truncated ({result.problem}); exporting its whole frames", file=sys.stderr)
    written = []
    if args.format == "amass":
        for person in people_motion(result.header, result.frames, result.tracks):
            path = out / f"{stem}_person{person.track_id}.npz"
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, **person.arrays)
            os.replace(tmp, path)
            written.append(path)
    else:
        track = camera_track(result.header, result.frames)
        write_camera(track, str(out / f"{stem}_camera.json"), str(out / f"{stem}_camera.npz"))
        written += [out / f"{stem}_camera.json", out / f"{stem}_camera.npz"]
    for path in written:
        print(path)
    return 0
