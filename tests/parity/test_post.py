"""The engine's post-processing reproduces the reference's `prepare_output` (postprocessed.npz)."""
from __future__ import annotations

from backend.parity.post import compare_postprocessed, format_rows


def test_postprocessed_parity(parity_fixture_dir):
    rows = compare_postprocessed(parity_fixture_dir)
    names = {r.name for r in rows}
    # every array of the fixture is compared, incl. the SMPL-X outputs rebuilt from our parameters
    assert {"ttt3r/pts3d_world", "ttt3r/cam2world", "ttt3r/focal", "ttt3r/intrinsics", "ttt3r/smpl_rotvec",
            "ttt3r/smpl_verts_world", "ttt3r/smpl_joints_world", "ttt3r/smpl_joints_cam", "plain/smpl_joints_world",
            "msk", "smpl_faces"} <= names
    assert len(rows) == 39
    bad = [r for r in rows if not r.ok]
    assert not bad, "\n" + format_rows(rows)
