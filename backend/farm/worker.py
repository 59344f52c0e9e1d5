"""The per-GPU worker: loads the model once, then runs clips one after another.

`ClipWorker` is a plain class; the driver turns it into a Ray actor (one per GPU, or per few CPU
cores). Each clip goes through `backend.engine.job.iter_job_messages` and the `.h3r` writer exactly
as `human3r infer` does, so a clip's frames are the same bytes as infer's for the same options
(only the job id differs). The file is written to the attempt's temporary name on the output
storage and renamed by `store.publish` once the stream has ended.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

from backend.farm import store

PROGRESS_EVERY_S = 1.0  # how often a running clip reports back to the driver
_ENGINE_LOADS = 0  # model loads in this process (reported by `info`, checked by the tests)


def model_threads(model: dict[str, Any], cpus: int) -> int:
    """torch (and OpenMP) threads of a worker given `cpus` cores: the model's `threads` if set, else
    all its cores but one, which the decoding process gets (at least 1)."""
    return model.get("threads") or max(1, cpus - 1)


class ClipWorker:
    """Holds one loaded `Engine` and runs clips on it.

    Args:
        model: checkpoint (path or None), smplx (path or None), device ('auto', 'cpu', 'cuda', ...),
            precision ('fp32'/'bf16'), threads (torch CPU threads, None = cores given to the
            worker minus one for the decoding process, at least 1).
        cpus: CPU cores the scheduler gave this worker.
    """

    def __init__(self, model: dict[str, Any], cpus: int = 1):
        global _ENGINE_LOADS
        from backend.engine.stream import Engine

        started = time.perf_counter()
        self.engine = Engine.from_paths(model.get("checkpoint"), model.get("smplx"), device=model.get("device", "auto"),
                                        precision=model.get("precision", "fp32"), graphs=model.get("graphs"))
        _ENGINE_LOADS += 1
        self.load_s = time.perf_counter() - started
        threads = model_threads(model, cpus)
        self.threads = self.engine.use_cpu_threads(threads) if self.engine.device.type == "cpu" else threads
        if self.engine.device.type != "cpu":
            import torch

            torch.set_num_threads(threads)  # post-processing still runs on the CPU

    def info(self) -> dict[str, Any]:
        """Facts about this worker: pid, model loads in this process, device, checkpoint digest."""
        describe = self.engine.describe()
        return {"pid": os.getpid(), "loads": _ENGINE_LOADS, "load_s": round(self.load_s, 3),
                "device": describe["device"], "device_name": describe["device_name"],
                "checkpoint_digest": describe["checkpoint_digest"], "threads": self.threads,
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}

    def run_clip(self, spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Run one clip; yield small progress maps, then one result map (never frame data).

        Args:
            spec: name, source, options (JobOptions map), key (resume key), out_dir, part (this
                attempt's temporary path), job_id, attempt (1-based); crash_after_frames (tests:
                hard-exit this process after that many frames, as a lost GPU node would).
        Yields:
            {"event": "progress", "frames", "fps"} about every `PROGRESS_EVERY_S`, then
            {"event": "result", "status": "done"|"failed", "frames", "seconds", "people", "error"}.
        """
        from backend.engine.job import iter_job_messages
        from backend.engine.options import JobOptions
        from blender_addon.core import protocol
        from blender_addon.core.resultfile import ResultFileWriter

        options = JobOptions.from_dict(spec["options"])
        out_dir, part = Path(spec["out_dir"]), Path(spec["part"])
        crash_after = spec.get("crash_after_frames")
        file_types = {t.value for t in protocol.FILE_TYPES}
        frames, last = 0, None
        started = last_report = time.perf_counter()
        with ResultFileWriter(part) as writer:
            for msg in iter_job_messages(self.engine, spec["source"], options, spec["job_id"]):
                if msg["type"] in file_types:
                    writer.write(msg)
                if msg["type"] == "frame":
                    frames += 1
                    if crash_after is not None and frames >= crash_after:
                        os._exit(17)  # no clean-up at all, like a machine that loses power
                    now = time.perf_counter()
                    if now - last_report >= PROGRESS_EVERY_S:
                        last_report = now
                        yield {"event": "progress", "frames": frames, "fps": frames / max(now - started, 1e-9)}
                elif msg["type"] in ("done", "error", "cancelled"):
                    last = msg
        seconds = time.perf_counter() - started
        yield self._finish(spec, out_dir, part, last, frames, seconds)

    def _finish(self, spec, out_dir: Path, part: Path, last: dict | None, frames: int, seconds: float) -> dict:
        record = {"key": spec["key"], "source": str(spec["source"]), "frames": frames,
                  "seconds": round(seconds, 3), "attempt": spec["attempt"], "options": spec["options"]}
        if last is not None and last["type"] == "done":
            store.publish(part, out_dir, spec["name"], {**record, "status": "done", "error": None})
            return {"event": "result", "status": "done", "frames": frames, "seconds": seconds,
                    "people": int(last["people"]), "error": None}
        if last is None:
            error = {"code": "job_failed", "reason": None, "message": "the job stream ended without a final message"}
        else:
            error = {"code": last.get("code", "job_failed"), "reason": last.get("reason"),
                     "message": last.get("message", last["type"]), "frame": last.get("frame")}
        terminal = error["code"] == "bad_video"  # the input will not get better by running it again
        if frames:  # keep the frames before the failure, like `human3r infer`
            os.replace(part, store.result_path(out_dir, spec["name"]))
        else:
            store.remove_quietly(part)
        if terminal:
            store.publish(None, out_dir, spec["name"], {**record, "status": "failed", "error": error, "size": None})
        return {"event": "result", "status": "failed", "frames": frames, "seconds": seconds, "people": 0,
                "error": error}

