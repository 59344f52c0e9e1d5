"""Post-processing parity against a fixture's `postprocessed.npz` (the reference's `demo.prepare_output`).

Feeds the fixture's recorded model outputs (`outputs_ttt3r.npz`, `outputs_plain.npz`) through the
engine's own post-processing functions — online chunk alignment, world points, Weiszfeld focal,
mask unpadding, rotation conversion, SMPL-X parameters — and compares every array with the
reference's. SMPL-X outputs are checked *through the standard parameters the engine emits*: the
camera-frame and world-frame parameters are run through the `smplx` layer and must reproduce the
reference's `smpl_joints_cam`, `smpl_joints_world` and `smpl_verts_world`.

Usable from tests, `scripts/parity.py` and the command line:

    python -m backend.parity.post FIXTURE_DIR [--smplx PATH]

Tolerance per array: max|a − b| ≤ 5e-5 · max|ref|, exact for integer and boolean arrays
(`backend.parity.arrays`).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backend.engine.geometry import (
    ChunkAligner, estimate_focal_weiszfeld, intrinsics_matrix, pose_encoding_to_c2w, rotmat_to_rotvec,
    transform_points, unpad_square_map,
)
from backend.engine.people import smplx_parameters
from backend.parity.arrays import REL_TOL, compare_arrays
from backend.smplx_model import BodyModel

MODES = ("ttt3r", "plain")


@dataclass(frozen=True)
class ParityRow:
    """One compared array: worst absolute error, the reference's largest magnitude, their ratio."""

    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_ref: float
    rel: float
    ok: bool


def overlap_views(reset: np.ndarray) -> np.ndarray:
    """[V] bool: views whose *preceding* view had reset=True: the overlap copies (after a reset view the
    same image is fed again as the first view of the next chunk; its outputs are not kept)."""
    reset = np.asarray(reset, dtype=bool).reshape(-1)
    return np.concatenate([[False], reset[:-1]])


@torch.inference_mode()
def postprocess_recorded(outputs: dict[str, np.ndarray], reset: np.ndarray, body: BodyModel) -> dict[str, np.ndarray]:
    """Run the engine's post-processing over recorded per-view outputs.

    Args:
        outputs: `viewNNN/<name>` arrays as in the fixture's `outputs_*.npz`.
        reset: [V] reset flag of each view (after duplication).
        body: SMPL-X model.
    Returns:
        arrays named like `postprocessed.npz`'s (without the mode prefix), plus `msk`.
    """
    keep = ~overlap_views(reset)
    aligner = ChunkAligner()
    res: dict[str, list] = {k: [] for k in (
        "kept_view_index", "reset_mask", "pts3d_world", "cam2world", "intrinsics", "focal", "pp", "R_c2w", "t_c2w",
        "msk", "n_humans", "smpl_rotvec", "smpl_shape", "smpl_transl", "smpl_expression", "smpl_id",
        "smpl_verts_world", "smpl_joints_cam", "smpl_joints2d", "smpl_joints_world")}
    for v in np.flatnonzero(keep):
        def get(name: str) -> torch.Tensor | None:
            key = f"view{v:03d}/{name}"
            return torch.from_numpy(np.asarray(outputs[key])) if key in outputs else None

        pts_self = get("pts3d_in_self_view")  # [1, H, W, 3]
        h, w = pts_self.shape[1:3]
        c2w = aligner.align(pose_encoding_to_c2w(get("camera_pose")[0]), bool(reset[v]))
        focal = estimate_focal_weiszfeld(pts_self)[0]
        pp = (w // 2, h // 2)
        k_model = intrinsics_matrix(focal, pp)
        res["kept_view_index"].append(v)
        res["reset_mask"].append(bool(reset[v]))
        res["pts3d_world"].append(transform_points(c2w, pts_self[0]))
        res["cam2world"].append(c2w)
        res["intrinsics"].append(k_model)
        res["focal"].append(focal)
        res["pp"].append(torch.tensor(pp, dtype=torch.float32))
        res["R_c2w"].append(c2w[:3, :3])
        res["t_c2w"].append(c2w[:3, 3])
        res["msk"].append(unpad_square_map(get("msk")[..., 0], h, w)[0])
        rot53 = get("smpl_rotmat")
        n = 0 if rot53 is None else rot53.shape[1]
        res["n_humans"].append(n)
        if n == 0:
            continue
        rot53 = rot53[0]
        betas, expr, t_head = get("smpl_shape")[0], get("smpl_expression")[0], get("smpl_transl")[0]
        res["smpl_rotvec"].append(rotmat_to_rotvec(rot53))
        res["smpl_shape"].append(betas)
        res["smpl_transl"].append(t_head)
        res["smpl_expression"].append(expr)
        res["smpl_id"].append(get("smpl_id")[0])
        _, joints_cam = body.forward(smplx_parameters(body, rot53, betas, expr, t_head, None))
        verts_w, joints_w = body.forward(smplx_parameters(body, rot53, betas, expr, t_head, c2w))
        res["smpl_joints_cam"].append(joints_cam)
        res["smpl_verts_world"].append(verts_w)
        res["smpl_joints_world"].append(joints_w)
        proj = joints_cam @ k_model.T
        res["smpl_joints2d"].append(proj[..., :2] / proj[..., 2:3])

    def stack(name: str, values: list) -> np.ndarray:
        if not values:
            return np.zeros((0,))
        if isinstance(values[0], torch.Tensor):
            cat = torch.cat if name.startswith("smpl_") else torch.stack
            return cat(values).numpy()
        return np.asarray(values)

    return {k: stack(k, v) for k, v in res.items()}


def _row(name: str, ours: np.ndarray, ref: np.ndarray, rel_tol: float = REL_TOL) -> ParityRow:
    diff = compare_arrays(ours, ref, rel_tol)
    return ParityRow(name, tuple(np.shape(ref)), diff.max_abs, diff.max_ref, diff.ratio, diff.ok)


def compare_postprocessed(fixture_dir: str | Path, smplx_path: str | Path | None = None,
                          rel_tol: float = REL_TOL) -> list[ParityRow]:
    """Compare the engine's post-processing with every array of `fixture_dir/postprocessed.npz`.

    Args:
        fixture_dir: a folder laid out like `shared/fixtures/parity-small`.
        smplx_path: SMPL-X file; default: the fixture's own `SMPLX_NEUTRAL.npz`.
    Returns:
        one `ParityRow` per reference array (names `mode/key`, and `msk`, `smpl_faces`).
    """
    fixture_dir = Path(fixture_dir)
    body = BodyModel.load(smplx_path or fixture_dir / "SMPLX_NEUTRAL.npz")
    ref = np.load(fixture_dir / "postprocessed.npz")
    reset = np.load(fixture_dir / "inputs.npz")["reset"].reshape(-1)
    rows: list[ParityRow] = []
    for mode in MODES:
        outputs = np.load(fixture_dir / f"outputs_{mode}.npz")
        ours = postprocess_recorded({k: outputs[k] for k in outputs.files if k.startswith("view")}, reset, body)
        for key in ref.files:
            if key.startswith(f"{mode}/"):
                rows.append(_row(key, ours[key.split("/", 1)[1]], ref[key], rel_tol))
        if mode == MODES[0] and "msk" in ref.files:
            rows.append(_row("msk", ours["msk"], ref["msk"], rel_tol))
    if "smpl_faces" in ref.files:
        rows.append(_row("smpl_faces", np.asarray(body.layer.faces, dtype=np.int64), ref["smpl_faces"]))
    return rows


def format_rows(rows: list[ParityRow]) -> str:
    """A plain-text table of the rows (one line each)."""
    lines = [f"{'array':32s} {'shape':18s} {'max|a-b|':>10s} {'max|ref|':>10s} {'rel':>9s}  ok"]
    for r in rows:
        lines.append(f"{r.name:32s} {str(r.shape):18s} {r.max_abs:10.3g} {r.max_ref:10.3g} {r.rel:9.2g}  "
                     f"{'yes' if r.ok else 'NO'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("fixture_dir")
    parser.add_argument("--smplx", default=None, help="SMPL-X file (default: the fixture's)")
    args = parser.parse_args(argv)
    rows = compare_postprocessed(args.fixture_dir, args.smplx)
    print(format_rows(rows))
    bad = [r.name for r in rows if not r.ok]
    print(f"{len(rows) - len(bad)}/{len(rows)} arrays within tolerance" + (f"; failing: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
