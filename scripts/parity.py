"""Check the Human3R reimplementation against a reference fixture folder.

    python scripts/parity.py FIXTURE_DIR [--run ttt3r|plain|both] [--no-post]
    python scripts/parity.py --schema shared/spec/human3r-state-dict.tsv

FIXTURE_DIR is laid out like shared/fixtures/parity-small (config.json, checkpoint.safetensors,
inputs.npz, outputs_ttt3r.npz, outputs_plain.npz, optional postprocessed.npz + SMPLX_NEUTRAL.npz).
Every view (overlap views included) is fed with the fixture's exact preprocessed inputs; for each
output name the worst max|a-b|, max|ref| and their ratio are printed. When the folder has
postprocessed.npz, the engine's post-processing (chunk alignment, world points, focal, SMPL-X in the
world frame) is compared with it too. Exit status 1 if any array exceeds max|a-b| <= 5e-5 * max|ref| or any
detection count, detection set or track id differs; 2 on a usage/load error.

On a CPU whose float32 arithmetic rounds differently from the fixture machine's (it says so), the CroCo
encoder's float16 q/k round trip flips isolated values by a float16 ulp and the full chain can miss the rule
there; --reference-encoder then checks everything after the encoder from the reference's encoder tokens.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fixture", nargs="?", help="fixture folder")
    parser.add_argument("--run", choices=("ttt3r", "plain", "both"), default="both")
    parser.add_argument("--no-post", action="store_true", help="skip the postprocessed.npz comparison")
    parser.add_argument("--reference-encoder", action="store_true",
                        help="feed the reference's CroCo encoder tokens to the rest of the model (see above)")
    parser.add_argument("--schema", metavar="TSV",
                        help="check the full-size model's state-dict keys/shapes against a TSV")
    args = parser.parse_args(argv)

    if args.schema:
        from backend.model.checkpoint import check_schema

        problems = check_schema(args.schema)
        for line in problems:
            print(line)
        print("schema OK" if not problems else f"schema: {len(problems)} problem(s)")
        if not args.fixture:
            return 1 if problems else 0
    if not args.fixture:
        parser.error("FIXTURE_DIR is required (or --schema TSV)")

    import torch

    from backend.parity.model import check_fixture, format_report

    torch.set_grad_enabled(False)
    folder = Path(args.fixture)
    if not (folder / "config.json").is_file():
        print(f"error: {folder} is not a fixture folder (no config.json)", file=sys.stderr)
        return 2
    runs = ("ttt3r", "plain") if args.run == "both" else (args.run,)
    reports, arithmetic = check_fixture(folder, runs, from_reference_encoder=args.reference_encoder)
    for report in reports:
        print(format_report(report))
    ok = all(r.ok for r in reports)
    if arithmetic is not None and not arithmetic.same:
        print(f"note: {arithmetic.describe()}"
              + ("" if args.reference_encoder or ok else "; --reference-encoder checks everything after the encoder"))
    if not args.no_post and (folder / "postprocessed.npz").is_file():
        from backend.parity.post import compare_postprocessed, format_rows

        rows = compare_postprocessed(folder)
        print("== post-processing (postprocessed.npz)")
        print(format_rows(rows))
        ok = ok and all(r.ok for r in rows)
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
