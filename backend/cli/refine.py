"""`human3r refine IN.h3r -o OUT.h3r`: clean up a result file (floor, smoothing, foot lock) into a new one.

The input file is only read. The output is a normal result file (header, frames, tracks, end) whose
header records what was done (`refinement`: transform, filters, parameters, evidence, confidence,
reasons) and whose `conventions` name the refined world and carry the 4x4 from the raw world.
The clean-up flags (`backend.engine.options.add_cleanup_arguments`) are shared with `infer`; the options
themselves are `blender_addon.core.motion.CleanupOptions`.

Exit status: 0 written; 2 bad option or unreadable input (nothing written).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backend.cli.common import EXIT_OK, EXIT_USAGE
from backend.engine.options import add_cleanup_arguments, cleanup_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="result file to clean up (.h3r; left unchanged)")
    parser.add_argument("-o", "--output", required=True, help="refined result file to write (.h3r)")
    add_cleanup_arguments(parser, optional=False)


def _err(text: str) -> None:
    print(f"human3r refine: {text}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from blender_addon.core.motion import refine_job
    from blender_addon.core.motion.options import CleanupOptions
    from blender_addon.core.resultfile import ResultFileError, ResultFileWriter, read_result

    try:
        options = CleanupOptions.from_dict(cleanup_from_args(args))
    except ValueError as exc:
        _err(str(exc))
        return EXIT_USAGE
    src, dst = Path(args.input), Path(args.output)
    if dst.exists() and dst.is_dir():
        _err(f"output {dst} is a folder; give a file name like refined.h3r")
        return EXIT_USAGE
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        _err("output is the input file; the raw file is never overwritten: choose another name")
        return EXIT_USAGE
    try:
        contents = read_result(src)
    except ResultFileError as exc:
        _err(str(exc))
        return EXIT_USAGE
    if contents.header is None:
        _err(f"{src} holds no header (the job never started); nothing to refine")
        return EXIT_USAGE
    if contents.truncated:
        _err(f"warning: {src} is cut short ({contents.problem}); refining the {len(contents.frames)} whole frames")
    result = refine_job(contents.header, contents.frames, contents.tracks, contents.end, options)
    tmp = dst.with_name(dst.name + ".partial")
    with ResultFileWriter(tmp) as writer:
        writer.write(result.header)
        for msg in result.frames:
            writer.write(msg)
        for msg in result.tracks:
            writer.write(msg)
        if result.end is not None:
            writer.write(result.end)
    tmp.replace(dst)
    report = result.report
    ground = report.get("ground", {})
    print(f"wrote {dst}: {len(result.frames)} frames; ground {ground.get('evidence', 'off')} "
          f"(confidence {ground.get('confidence', 0)}), smoothing {'on' if report.get('smooth', {}).get('applied') else 'off'}, "
          f"foot lock {'on' if report.get('foot_lock', {}).get('applied') else 'off'}")
    for reason in report.get("reasons", []):
        print(f"  note: {reason}")
    return EXIT_OK
