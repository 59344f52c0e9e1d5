"""`human3r batch` on a real local Ray instance (2 fake GPUs, CPU torch, the tiny fixture model).

One Ray start for the module; each test runs `run_batch` (or the command) against it.
"""
from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import pytest

from blender_addon.core.resultfile import read_result
from tests.farm.clips import TINY_OPTIONS, raw_records, record_parts

if importlib.util.find_spec("ray") is None:  # importing ray here would fix its settings before the farm does
    pytest.skip("needs the farm extra (ray)", allow_module_level=True)

GOOD = ["walk_a", "walk_b", "walk_c", "walk_d", "stills"]


@pytest.fixture(scope="module")
def local_ray():
    from backend.farm.cluster import connect, disconnect

    resources = connect(None, num_cpus=2, num_gpus=2)
    yield resources
    disconnect(resources)


@pytest.fixture(scope="module")
def model(parity_fixture_dir, synthetic_smplx_path) -> dict:
    return {"checkpoint": str(parity_fixture_dir / "checkpoint.pth"), "smplx": str(synthetic_smplx_path),
            "device": "cpu", "precision": "fp32", "threads": 1}


def clip_inputs(farm_clips, names):
    from backend.farm.inputs import ClipInput

    return [ClipInput(farm_clips[n], n) for n in names]


def batch(local_ray, model, clips, out_dir, events=None, **settings):
    from backend.farm.driver import BatchSettings, run_batch

    on_event = None if events is None else (lambda event, state, payload: events.append((event, state.clip.name,
                                                                                         dict(payload))))
    return run_batch(clips, out_dir, dict(TINY_OPTIONS), BatchSettings(model=model, quiet=True, **settings), on_event)


def lengths_of(events) -> set[str]:
    """Clips that finished with a result in the events."""
    return {n for event, n, p in events if event == "end" and p.get("status") == "done"}


def file_facts(folder: Path) -> dict[str, tuple]:
    """name -> (inode, mtime_ns, size, bytes) of every file but the run summary."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size, p.read_bytes())
            for p in sorted(folder.iterdir()) if p.name != "batch.json"}


def assert_same_as_infer(result: Path, reference: Path) -> None:
    """Every record the same: array buffers byte for byte, envelopes equal but for the job id and the
    stream position `seq` (which counts the progress messages between frames, a matter of timing), and
    the run times in `done`."""
    ours, theirs = read_result(result), read_result(reference)
    assert ours.end["type"] == "done" and not ours.truncated
    ours_raw, theirs_raw = raw_records(result), raw_records(reference)
    assert len(ours_raw) == len(theirs_raw) == 1 + len(ours.frames) + len(ours.tracks) + 1
    for a, b in zip(ours_raw, theirs_raw):
        (env_a, arrays_a), (env_b, arrays_b) = record_parts(a), record_parts(b)
        assert arrays_a == arrays_b
        ignored = {"job", "seq"} | ({"elapsed_s", "fps"} if env_a["type"] == "done" else set())
        assert {k: v for k, v in env_a.items() if k not in ignored} == {k: v for k, v in env_b.items()
                                                                         if k not in ignored}
    assert ours.end["frames"] == theirs.end["frames"] == len(theirs.frames) > 0


@pytest.fixture(scope="module")
def first_run(local_ray, model, farm_clips, tmp_path_factory):
    """All six clips into a fresh folder holding an old orphan attempt file and a live-looking one."""
    out = tmp_path_factory.mktemp("batch_out")
    orphan, live = out / ".walk_a.h3r.1-0badf00d.part", out / ".other.h3r.1-12345678.part"
    orphan.write_bytes(b"dead attempt")
    live.write_bytes(b"attempt of a batch still running")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    events: list = []
    report = batch(local_ray, model, clip_inputs(farm_clips, ["broken", *GOOD]), out, events)
    return {"out": out, "report": report, "events": events, "orphan": orphan, "live": live}


def test_results_are_infers_bytes(first_run, infer_reference):
    report, out = first_run["report"], first_run["out"]
    status = {c.clip.name: c.status for c in report.clips}
    assert status == {"broken": "failed", **{n: "done" for n in GOOD}}
    for name in GOOD:
        assert_same_as_infer(out / f"{name}.h3r", infer_reference[name])
        record = json.loads((out / f"{name}.h3r.json").read_text())
        assert record["status"] == "done" and record["size"] == (out / f"{name}.h3r").stat().st_size


def test_one_model_load_per_worker_clips_longest_first(first_run):
    report, events = first_run["report"], first_run["events"]
    assert len(report.workers) == 2  # one per (fake) GPU
    joined = [w for w in report.workers if w["processes"]]  # a slow starter may join after the last clip
    processes = [w["processes"] for w in joined]
    assert all(len(p) == 1 and p[0]["loads"] == 1 for p in processes)  # several clips, one model load
    assert sum(w["clips"] for w in report.workers) == 6 and max(w["clips"] for w in joined) >= 2
    assert len({p[0]["cuda_visible_devices"] for p in processes}) == len(joined)  # each its own GPU
    assert {p[0]["node_ip"] for p in processes} == {"127.0.0.1"}  # loopback-only instance
    for name in lengths_of(events):
        frames = [p["frames"] for event, n, p in events if n == name and event in ("progress", "end")]
        assert frames == sorted(frames) and frames[-1] == next(c.total for c in report.clips if c.clip.name == name)
    starts = [name for event, name, _ in events if event == "start"]
    lengths = {"walk_a": 14, "walk_b": 11, "walk_c": 9, "walk_d": 7, "stills": 5, "broken": 40}
    assert starts == sorted(lengths, key=lambda n: -lengths[n])


def test_corrupt_clip_fails_once_and_keeps_its_frames(first_run):
    report, events, out = first_run["report"], first_run["events"], first_run["out"]
    broken = next(c for c in report.clips if c.clip.name == "broken")
    assert broken.attempts == 1 and [e for e in events if e[0] == "start" and e[1] == "broken"] != []
    assert len([e for e in events if e[0] == "start" and e[1] == "broken"]) == 1  # never retried
    assert broken.error["code"] == "bad_video" and broken.error["reason"] == "corrupt"
    kept = read_result(out / "broken.h3r")  # frames before the damage, like `human3r infer`
    assert kept.end["type"] == "error" and len(kept.frames) == broken.frames > 0
    summary = json.loads((out / "batch.json").read_text())
    assert summary["counts"] == {"done": 5, "skipped": 0, "failed": 1, "cancelled": 0, "not_run": 0}
    entry = next(c for c in summary["clips"] if c["name"] == "broken")
    assert entry["error"]["reason"] == "corrupt" and entry["status"] == "failed"


def test_orphan_attempt_files_cleaned(first_run):
    out = first_run["out"]
    assert not first_run["orphan"].exists()
    assert first_run["live"].exists()  # young: may belong to a batch still running here
    assert [p.name for p in out.glob(".*.part")] == [first_run["live"].name]


def test_rerun_skips_everything_and_modifies_nothing(first_run, local_ray, model, farm_clips):
    out = first_run["out"]
    before = file_facts(out)
    report = batch(local_ray, model, clip_inputs(farm_clips, ["broken", *GOOD]), out)
    assert file_facts(out) == before
    assert {c.clip.name: c.status for c in report.clips} == {"broken": "failed", **{n: "skipped" for n in GOOD}}
    assert report.workers == []  # nothing to run: no worker was started
    summary = json.loads((out / "batch.json").read_text())
    assert summary["counts"]["skipped"] == 5


def test_changed_options_or_force_redo(first_run, local_ray, model, farm_clips, infer_reference, tmp_path):
    from backend.farm.driver import plan_clips
    from backend.farm.store import resume_key

    a = plan_clips(clip_inputs(farm_clips, ["walk_d"]), dict(TINY_OPTIONS))[0]
    b = plan_clips(clip_inputs(farm_clips, ["walk_d"]), {**TINY_OPTIONS, "stride": 2})[0]
    assert resume_key(a.clip.source, a.options, "x") != resume_key(b.clip.source, b.options, "x")
    out = tmp_path / "forced"
    out.mkdir()
    for suffix in (".h3r", ".h3r.json"):
        (out / f"walk_d{suffix}").write_bytes((first_run["out"] / f"walk_d{suffix}").read_bytes())
    inode = (out / "walk_d.h3r").stat().st_ino
    report = batch(local_ray, model, clip_inputs(farm_clips, ["walk_d"]), out, force=True, workers=1)
    assert report.clips[0].status == "done" and (out / "walk_d.h3r").stat().st_ino != inode
    assert_same_as_infer(out / "walk_d.h3r", infer_reference["walk_d"])


def test_worker_crash_mid_clip_is_retried_and_retries_are_bounded(local_ray, model, farm_clips, infer_reference,
                                                                  tmp_path):
    events: list = []
    # walk_a: its first attempt's worker dies after 4 frames; walk_d: every attempt's worker dies
    report = batch(local_ray, model, clip_inputs(farm_clips, ["walk_a", "walk_d"]), tmp_path, events, workers=1,
                   retries=1, crash_after_frames={"walk_a": (4, 1), "walk_d": (2, 2)})
    walk_a, walk_d = report.clips
    assert walk_a.status == "done" and walk_a.attempts == 2
    assert [e[0] for e in events if e[1] == "walk_a" and e[0] != "progress"] == ["start", "retry", "start", "end"]
    assert_same_as_infer(tmp_path / "walk_a.h3r", infer_reference["walk_a"])
    assert walk_d.status == "failed" and walk_d.attempts == 2  # one run plus `retries` re-runs, no more
    assert walk_d.error["code"] == "job_failed" and walk_d.error["reason"] == "worker_lost"
    processes = report.workers[0]["processes"]  # the only worker: Ray restarted it, the model loaded again
    assert [p.get("lost", False) for p in processes] == [True, True, True]  # the batch ends before a 4th start
    assert len({p["pid"] for p in processes}) == 3 and all(p["loads"] == 1 for p in processes)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.json", "walk_a.h3r", "walk_a.h3r.json"]


def test_ctrl_c_keeps_finished_results(local_ray, model, farm_clips, infer_reference, tmp_path):
    def interrupt_after_first(event, state, payload):
        if event == "end":
            raise KeyboardInterrupt

    from backend.farm.driver import BatchSettings, run_batch

    report = run_batch(clip_inputs(farm_clips, ["walk_a", "walk_b", "walk_c", "walk_d"]), tmp_path,
                       dict(TINY_OPTIONS), BatchSettings(model=model, quiet=True, workers=1), interrupt_after_first)
    assert report.interrupted
    status = {c.clip.name: c.status for c in report.clips}
    assert status == {"walk_a": "done", "walk_b": "not_run", "walk_c": "not_run", "walk_d": "not_run"}
    assert_same_as_infer(tmp_path / "walk_a.h3r", infer_reference["walk_a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.json", "walk_a.h3r", "walk_a.h3r.json"]


def test_local_instance_is_locked_down(local_ray):
    import ray

    node = ray._private.worker._global_node
    assert local_ray.node_ip == node.node_ip_address == "127.0.0.1"
    assert not node.address_info.get("webui_url")  # no dashboard unless asked
