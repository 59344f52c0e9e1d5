"""CI smoke test of scripts/refine_accuracy.py on one scene: every criterion is printed with a count and a
worst value, and the JSON holds the figures per person, which agree with what the tests measure."""
from __future__ import annotations

import json

from tests.support.scripts import load_script


def test_refine_accuracy_smoke(tmp_path, capsys):
    script = load_script("refine_accuracy")
    out = tmp_path / "accuracy.json"
    assert script.main(["--seeds", "0", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "1 scenes (seeds 0), 4 people" in printed
    for label, *_ in script.CRITERIA:
        assert label in printed
    assert "person-frames" in printed
    (scene,) = json.loads(out.read_text())
    assert scene["seed"] == 0 and scene["floor_angle_deg"] < 1.0 and scene["contact_f1"] >= 0.9
    kinds = [p["kind"] for p in scene["people"]]
    assert kinds == ["walk", "walk", "stand", "jump"]
    for p in scene["people"]:
        assert p["mpjpe_refined_m"] < p["mpjpe_raw_m"]
        assert p["jitter_ratio"] <= 0.2 and p["skating_m_per_frame"] <= 0.0005
        # seed 0 passes on single frames too (tests/motion/test_refine.py), so no frame counts as worse
        assert p["worse_1f_count"] == 0 and p["worse_3f_max_m"] < p["worse_1f_max_m"] <= 0.0
        assert p["worse_1f_raw_rank"] == []
        # the pooled parts add up to the person's own mean
        assert abs(p["skating_sum_m"] / p["skating_samples"] - p["skating_m_per_frame"]) < 1e-12
        assert 0.0 <= p["skating_clip_ends_sum_m"] <= p["skating_sum_m"] < 0.01 * p["skating_raw_sum_m"]
    assert "skating pooled over every true-contact sample" in printed
