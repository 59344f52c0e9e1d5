"""The batch driver: probe clips, start the workers, hand out clips longest first, retry lost work.

Scheduling is pull-based: each worker (Ray actor) has at most one clip in flight; when its stream
ends it gets the next clip, so faster GPUs simply take more clips. Outcomes:

* a clip that ends with `done` is published by its worker (rename + record, see `store`);
* bad input (`bad_video`: missing, unreadable, corrupt) fails once, terminally, and is recorded so
  that reruns skip it unless `retry_failed`;
* a worker process or node that dies mid-clip (Ray restarts the actor, reloading the model) makes
  the clip start again from its first frame, in a new attempt file, at most `retries` times;
* Ctrl-C / SIGTERM kills the workers, deletes the temporary files of the clips in flight, and
  leaves every finished result untouched.

At the end `OUT_DIR/batch.json` summarises the run: per clip status (done, skipped, failed,
cancelled, not_run), frames, seconds, attempts and error; and the workers (pid, node, model loads).
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from backend.engine.options import JobOptions
from backend.farm import store
from backend.farm.cluster import ClusterError, Resources, connect, disconnect, import_ray
from backend.farm.inputs import ClipInput
from backend.farm.progress import BatchProgress
from backend.farm.worker import ClipWorker, model_threads

SUMMARY_NAME = "batch.json"
WAIT_S = 1.0  # longest pause between looks at the workers (progress arrives about every second)
DEFAULT_CPUS_PER_CPU_WORKER = 2  # the model's threads plus the decoding process
MAX_CPUS_PER_GPU_WORKER = 4


class SetupError(RuntimeError):
    """The workers could not start (checkpoint, SMPL-X model, Ray); the message says what to fix."""


@dataclass
class BatchSettings:
    """How to run a batch (see `human3r batch --help`).

    Attributes:
        model: ClipWorker model map (checkpoint, smplx, device, precision, threads).
        address: None = local Ray sized to this machine; else 'auto', 'HOST:PORT' or 'ray://...'.
        workers: number of workers (None: one per GPU, else one per `cpus_per_worker` cores).
        cpus_per_worker: CPU cores reserved per worker (None: 2 without GPUs, else the node's
            CPUs per GPU, at most 4).
        retries: re-runs of a clip after its worker or node died (bad input is never retried).
        force: redo clips even when their result exists; retry_failed: redo recorded bad-input failures.
        local_cpus, local_gpus: size of a local instance (tests give fake GPUs here).
        dashboard: start the local dashboard (127.0.0.1 only).
        quiet: no progress output.
        crash_after_frames: tests only: clip name -> (frames, attempts): the worker process
            hard-exits after that many frames of each of the clip's first `attempts` attempts.
    """

    model: dict[str, Any]
    address: str | None = None
    workers: int | None = None
    cpus_per_worker: int | None = None
    retries: int = 2
    force: bool = False
    retry_failed: bool = False
    local_cpus: int | None = None
    local_gpus: int | None = None
    dashboard: bool = False
    quiet: bool = False
    crash_after_frames: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class ClipState:
    """One clip's plan and outcome (one entry of batch.json)."""

    clip: ClipInput
    options: dict[str, Any]
    total: int | None = None
    key: str | None = None
    status: str = "not_run"
    frames: int = 0
    seconds: float = 0.0
    attempts: int = 0
    error: dict | None = None
    worker: int | None = None
    recorded: bool = False  # its outcome is already in its completion record (skipped)
    probe_error: dict | None = None  # the input could not be opened (found before any worker ran)

    def summary(self, out_dir: Path) -> dict[str, Any]:
        output = store.result_path(out_dir, self.clip.name)
        return {"name": self.clip.name, "source": str(self.clip.source), "origin": self.clip.origin,
                "output": str(output) if output.exists() else None, "status": self.status,
                "frames": self.frames, "expected_frames": self.total, "seconds": round(self.seconds, 3),
                "attempts": self.attempts, "worker": self.worker, "error": self.error}


@dataclass
class BatchReport:
    """What a batch did: clip states, worker facts, wall time, and whether it was interrupted."""

    clips: list[ClipState]
    workers: list[dict[str, Any]]
    seconds: float
    interrupted: bool = False

    def count(self, status: str) -> int:
        return sum(c.status == status for c in self.clips)


def plan_clips(clips: list[ClipInput], base_options: dict[str, Any]) -> list[ClipState]:
    """Merge options and probe every clip's length (no Ray needed). A clip whose input cannot be
    opened is failed here, terminally, with code `bad_video` and the reader's reason."""
    from backend.video.reader import VideoError, open_source

    states = []
    for clip in clips:
        options = JobOptions.from_dict({**base_options, **clip.options})
        state = ClipState(clip, options.to_dict())
        try:
            with open_source(clip.source, start=options.start, end=options.end, stride=options.stride) as probe:
                state.total = probe.expected_frames
        except VideoError as exc:
            state.status = "failed"
            state.probe_error = {"code": "bad_video", "reason": exc.code, "message": str(exc), "frame": None}
            state.error = state.probe_error
        states.append(state)
    return states


def run_batch(clips: list[ClipInput], out_dir: Path, base_options: dict[str, Any], settings: BatchSettings,
              on_event: Callable[[str, ClipState, dict], None] | None = None) -> BatchReport:
    """Run `clips` into `out_dir` (see the module docstring); returns the report (also batch.json).

    Args:
        on_event: called in the driver as (event, clip state, payload) for 'start', 'progress',
            'retry' and 'end' (tests use it to act mid-clip).
    Raises:
        SetupError: Ray or the workers could not start.
    """
    ray = import_ray(local=settings.address is None)
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    states = plan_clips(clips, base_options)
    store.clean_stale_parts(out_dir)
    local_digest = local_checkpoint_digest(settings.model.get("checkpoint"))
    if local_digest is not None and _mark_finished(states, out_dir, settings, local_digest) == 0:
        _record_probe_failures(states, out_dir)
        report = BatchReport(states, [], time.perf_counter() - started)  # nothing to run: no Ray at all
        write_summary(out_dir, report, base_options)
        return report
    report = _run_on_ray(ray, states, out_dir, base_options, settings, on_event, started, local_digest)
    write_summary(out_dir, report, base_options)
    return report


def _run_on_ray(ray, states, out_dir, base_options, settings, on_event, started, local_digest) -> BatchReport:
    try:
        resources = connect(settings.address, num_cpus=settings.local_cpus, num_gpus=settings.local_gpus,
                            dashboard=settings.dashboard)
    except ClusterError as exc:
        raise SetupError(str(exc)) from None
    pool = None
    try:
        # SIGTERM (a job scheduler's stop) unwinds like Ctrl-C; installed after ray.init, whose own
        # handler would abort the process with a stack dump
        with _sigterm_as_interrupt():
            pool = _WorkerPool(ray, resources, settings)
            if pool.digest != local_digest:  # the workers' file decides
                _mark_finished(states, out_dir, settings, pool.digest)
            todo = [s for s in states if s.status == "not_run"]
            todo.sort(key=lambda s: -(s.total if s.total is not None else 0))  # longest first
            _record_probe_failures(states, out_dir)
            progress = BatchProgress(sum(s.total or 0 for s in todo), len(todo), settings.quiet)
            scheduler = _Scheduler(ray, pool, out_dir, settings, progress, on_event)
            interrupted = False
            try:
                scheduler.run(todo)
            except KeyboardInterrupt:
                interrupted = True
                scheduler.cancel()
            finally:
                progress.close()
        return BatchReport(states, pool.worker_facts(), time.perf_counter() - started, interrupted)
    finally:
        if pool is not None:
            pool.kill_all()
        disconnect(resources)


def local_checkpoint_digest(checkpoint: str | None) -> str | None:
    """sha256 of the checkpoint's weights file when this machine can read it (what `Engine` reports as
    `checkpoint_digest`), else None. Lets a rerun with nothing left to do skip starting Ray."""
    from backend.engine.stream import resolve_checkpoint_path
    from backend.model.checkpoint import file_digest

    path = resolve_checkpoint_path(checkpoint)
    if path.suffix.lower() not in (".pth", ".pt", ".ckpt", ".bin", ".safetensors") or not path.is_file():
        return None
    try:
        return file_digest(path)
    except OSError:
        return None


def _mark_finished(states: list[ClipState], out_dir: Path, settings: BatchSettings, digest: str) -> int:
    """Set each clip's resume key for `digest` and mark the finished ones from their completion
    records; returns how many clips need a worker."""
    for state in states:
        state.key = store.resume_key(state.clip.source, state.options, digest)
        state.status = "failed" if state.probe_error else "not_run"
        state.error, state.frames, state.seconds, state.recorded = state.probe_error, 0, 0.0, False
        record = None if settings.force else store.is_finished(out_dir, state.clip.name, state.key,
                                                               settings.retry_failed)
        if record is not None:
            state.recorded = True
            state.status = "skipped" if record["status"] == "done" else "failed"
            state.frames, state.seconds = record.get("frames", 0), record.get("seconds", 0.0)
            state.error = record.get("error")
    return sum(state.status == "not_run" for state in states)


def _record_probe_failures(states: list[ClipState], out_dir: Path) -> None:
    """Inputs that could not even be opened are recorded like any bad-input failure."""
    for state in states:
        if state.status == "failed" and not state.recorded:
            state.attempts = 1
            store.publish(None, out_dir, state.clip.name, _failure_record(state))


def _failure_record(state: ClipState) -> dict:
    return {"key": state.key, "source": str(state.clip.source), "frames": 0, "seconds": 0.0, "attempt": 1,
            "options": state.options, "status": "failed", "error": state.error, "size": None}


def write_summary(out_dir: Path, report: BatchReport, base_options: dict[str, Any]) -> Path:
    """Write OUT_DIR/batch.json (atomically) and return its path."""
    counts = {status: report.count(status) for status in ("done", "skipped", "failed", "cancelled", "not_run")}
    path = out_dir / SUMMARY_NAME
    store.write_json_atomic(path, {
        "format": 1, "seconds": round(report.seconds, 3), "interrupted": report.interrupted,
        "options": base_options, "counts": counts, "workers": report.workers,
        "clips": [c.summary(out_dir) for c in report.clips],
    })
    return path


class _WorkerPool:
    """The Ray actors: one per GPU (or per few CPU cores), restarted by Ray when they die."""

    def __init__(self, ray, resources: Resources, settings: BatchSettings):
        self.ray = ray
        gpus = int(resources.gpus)
        if gpus > 0:
            per_gpu = max(1, int(resources.cpus // gpus))
            self.cpus = settings.cpus_per_worker or min(MAX_CPUS_PER_GPU_WORKER, per_gpu)
            self.gpus = 1
            count = settings.workers or gpus
        else:
            self.cpus = settings.cpus_per_worker or min(DEFAULT_CPUS_PER_CPU_WORKER, max(1, int(resources.cpus)))
            self.gpus = 0
            count = settings.workers or max(1, int(resources.cpus // self.cpus))
        threads = model_threads(settings.model, self.cpus)
        env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        remote = ray.remote(_RayClipWorker)
        self.actors = [remote.options(num_cpus=self.cpus, num_gpus=self.gpus, max_restarts=-1, max_task_retries=0,
                                      runtime_env={"env_vars": env}).remote(settings.model, self.cpus)
                       for _ in range(count)]
        self.facts: list[dict[str, Any]] = [{"worker": i, "processes": [], "clips": 0} for i in range(count)]
        # workers answer `info` once the model is loaded; the rest join while the first ones work (a
        # cluster may still be adding nodes, or have fewer free GPUs than workers asked for)
        self.starting: dict[Any, int] = {a.info.remote(): i for i, a in enumerate(self.actors)}
        self.ready: list[int] = []
        self.digest: str | None = None
        problems = []
        while not self.ready and self.starting:
            done, _ = ray.wait(list(self.starting), num_returns=1)
            worker = self.starting.pop(done[0])
            problem = self.joined(worker, done[0])
            if problem:
                problems.append(problem)
        if not self.ready:
            self.kill_all()
            raise SetupError(f"no worker could load the model: {problems[0]}")

    def joined(self, worker: int, info_ref) -> str | None:
        """Take in a started (or restarted) worker's `info`; returns why it cannot work, or None."""
        try:
            info = self.ray.get(info_ref)
        except self.ray.exceptions.RayError as exc:
            return _root_cause(exc)  # died while loading: Ray does not restart a failed constructor
        self.facts[worker]["processes"].append(info)
        self.digest = self.digest or info["checkpoint_digest"]
        if info["checkpoint_digest"] != self.digest:  # results must not depend on which node ran them
            self.ray.kill(self.actors[worker], no_restart=True)
            self.facts[worker]["error"] = "loaded a different checkpoint than the other workers"
            return f"worker {worker} on node {info.get('node_ip')} loaded a different checkpoint; give every node the same file"
        self.ready.append(worker)
        return None

    def worker_facts(self) -> list[dict[str, Any]]:
        return self.facts

    def kill_all(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.starting.clear()


class _RayClipWorker(ClipWorker):
    """ClipWorker plus the Ray node it runs on (in `info` and in every event)."""

    def info(self) -> dict[str, Any]:
        import ray

        return {**super().info(), "node_id": ray.get_runtime_context().get_node_id(),
                "node_ip": ray.util.get_node_ip_address()}

    def run_clip(self, spec: dict[str, Any]):
        import ray

        node = ray.get_runtime_context().get_node_id()
        for item in super().run_clip(spec):
            yield {**item, "node_id": node, "pid": os.getpid()}


@dataclass
class _Running:
    state: ClipState
    spec: dict[str, Any]
    worker: int
    saw_result: bool = False


class _Scheduler:
    """The event loop: one clip in flight per worker, results and faults handled as they arrive."""

    def __init__(self, ray, pool: _WorkerPool, out_dir: Path, settings: BatchSettings, progress: BatchProgress,
                 on_event):
        self.ray, self.pool, self.out_dir, self.settings = ray, pool, out_dir, settings
        self.progress = progress
        self.on_event = on_event or (lambda *a: None)
        self.in_flight: dict[Any, _Running] = {}
        self.idle: list[int] = list(pool.ready)
        self.queue: list[ClipState] = []

    def run(self, todo: list[ClipState]) -> None:
        self.queue = list(todo)
        while self.queue or self.in_flight:
            while self.idle and self.queue:
                self._submit(self.idle.pop(0), self.queue.pop(0))
            waiting = list(self.in_flight) + list(self.pool.starting)
            if not waiting:  # every worker is gone for good
                for state in self.queue:
                    state.status = "failed"
                    state.error = {"code": "job_failed", "reason": "worker_lost", "message": "no worker left"}
                self.queue = []
                return
            ready, _ = self.ray.wait(waiting, num_returns=1, timeout=WAIT_S)
            for ref in ready:
                if ref in self.pool.starting:
                    self._joined(ref)
                else:
                    self._advance(ref)

    def cancel(self) -> None:
        """Stop now: kill the workers, delete the files of the clips in flight (finished results stay)."""
        self.pool.kill_all()
        for run in self.in_flight.values():
            if run.saw_result:
                continue  # finished (published) just before the stop
            store.remove_quietly(Path(run.spec["part"]))
            state = run.state
            record = store.is_finished(self.out_dir, state.clip.name, state.key, retry_failed=True)
            if record is not None:  # published by the worker before the kill, its result not yet seen here
                state.status, state.frames = "done", int(record.get("frames") or state.frames)
                self.progress.ended(state.clip.name, state.status, state.frames, state.seconds, None)
                continue
            # killed between the rename and the record: the file is whole but unrecorded, so a rerun
            # would redo it anyway; remove it so what is on disk matches batch.json
            store.remove_quietly(store.result_path(self.out_dir, state.clip.name))
            state.status = "cancelled"
        self.in_flight.clear()
        for state in self.queue:
            state.status = "not_run"

    def _submit(self, worker: int, state: ClipState) -> None:
        state.attempts += 1
        state.status, state.worker = "running", worker
        spec = {"name": state.clip.name, "source": str(state.clip.source), "options": state.options,
                "key": state.key, "out_dir": str(self.out_dir), "job_id": uuid.uuid4().hex[:12],
                "part": str(store.attempt_path(self.out_dir, state.clip.name, state.attempts)),
                "attempt": state.attempts}
        frames, attempts = self.settings.crash_after_frames.get(state.clip.name, (None, 0))
        if state.attempts <= attempts:
            spec["crash_after_frames"] = frames
        actor = self.pool.actors[worker]
        gen = actor.run_clip.options(num_returns="streaming").remote(spec)
        self.in_flight[gen] = _Running(state, spec, worker)
        self.pool.facts[worker]["clips"] += 1
        self.progress.started(state.clip.name, state.total, worker, state.attempts)
        self.on_event("start", state, {"worker": worker, "attempt": state.attempts})

    def _advance(self, gen) -> None:
        run = self.in_flight[gen]
        exceptions = self.ray.exceptions
        try:
            item = self.ray.get(next(gen))
        except StopIteration:
            del self.in_flight[gen]
            self.idle.append(run.worker)
            if not run.saw_result:  # cannot happen with a healthy worker; never leave a clip "running"
                self._fail(run, {"code": "job_failed", "reason": None, "message": "the worker ended without a result"})
            return
        except exceptions.RayTaskError as exc:  # our code raised in the worker (e.g. the disk is full)
            del self.in_flight[gen]
            self.idle.append(run.worker)
            store.remove_quietly(Path(run.spec["part"]))
            self._fail(run, {"code": "job_failed", "reason": None, "message": _root_cause(exc)})
            return
        except exceptions.RayError as exc:  # the worker process or its node died
            del self.in_flight[gen]
            self._lost(run, exc)
            return
        if item["event"] == "progress":
            run.state.frames = item["frames"]
            self.progress.advanced(run.state.clip.name, item["frames"], run.state.total, item["fps"])
            self.on_event("progress", run.state, item)
        elif item["event"] == "result":
            run.saw_result = True
            state = run.state
            state.status, state.frames, state.seconds, state.error = (item["status"], item["frames"],
                                                                      item["seconds"], item["error"])
            self.progress.advanced(state.clip.name, item["frames"], state.total, 0.0)
            self.progress.ended(state.clip.name, state.status, state.frames, state.seconds, state.error)
            self.on_event("end", state, item)

    def _lost(self, run: _Running, exc: Exception) -> None:
        """The worker died mid-clip: its attempt file is an orphan; re-run the clip if retries remain."""
        store.remove_quietly(Path(run.spec["part"]))
        state = run.state
        why = f"worker {run.worker} lost ({type(exc).__name__})"
        processes = self.pool.facts[run.worker]["processes"]
        if processes:
            processes[-1]["lost"] = True
        # Ray restarts the actor (reloading the model); it takes work again once it answers
        probe = self.pool.actors[run.worker].info.options(max_task_retries=-1).remote()  # waits for the restart
        self.pool.starting[probe] = run.worker
        if run.saw_result:
            return  # died after its clip was published: nothing to redo
        if state.attempts <= self.settings.retries:
            state.status = "queued"
            self.queue.insert(0, state)  # it was the longest waiting clip
            self.progress.retried(state.clip.name, why, state.attempts + 1)
            self.on_event("retry", state, {"worker": run.worker, "error": why})
        else:
            self._fail(run, {"code": "job_failed", "reason": "worker_lost",
                             "message": f"{why}; gave up after {state.attempts} attempts"})

    def _joined(self, probe) -> None:
        worker = self.pool.starting.pop(probe)
        problem = self.pool.joined(worker, probe)
        if problem is None:
            self.idle.append(worker)
        else:
            self.progress.line(f"  worker {worker} left: {problem}")

    def _fail(self, run: _Running, error: dict) -> None:
        state = run.state
        state.status, state.error = "failed", error
        self.progress.ended(state.clip.name, "failed", state.frames, state.seconds, error)
        self.on_event("end", state, {"status": "failed", "error": error})


def _root_cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc.__cause__
    text = str(cause or exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """Treat SIGTERM like Ctrl-C while the batch runs (only possible on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
