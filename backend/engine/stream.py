"""The streaming engine: a video in, one `FrameResult` per processed source frame out.

`Engine` holds what is loaded once per process (network, SMPL-X model, device). `Engine.run` is a
generator (SAM2-style) over a `FrameSource` that carries an explicit, typed `RunState` from frame to
frame: the model's stream state, the chunk aligner and the schedule position. Nothing in it grows
with the number of frames, so host and device memory stay flat however long the video.

Schedule (the reference's online inference): processed frame k (0-based) is a reset view when
(k + 1) % reset_interval == 0. After a reset view the model state returns to its initial value and
the same image is processed again as the first view of the next chunk (the *overlap view*); its
outputs are discarded (only the tracker learns from it). The overlap view is run lazily, when the
next frame arrives, so a video ending on a reset view costs nothing extra. Each kept frame's camera
is re-based online into the first chunk's world frame (`geometry.ChunkAligner`).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from backend.engine.cpu_threads import model_threads
from backend.engine.device_input import finished_frames
from backend.engine.geometry import ChunkAligner, pose_encoding_to_c2w
from backend.engine.host_copy import copy_to_host
from backend.engine.interrupt import interruptible
from backend.engine.options import JobOptions
from backend.engine.postprocess import CameraResult, frame_results, frame_to_host
from backend.engine.run_ahead import run_ahead
from backend.model.graphs import use_graphs, without_graphs
from backend.model.precision import FAST, preprocesses_on_device, resolve_precision, to_fast
from backend.model.sync_audit import on_host
from backend.model.tracker import assign_ids
from backend.model_files import resolve_checkpoint_path
from backend.smplx_model import BodyModel
from backend.video.preprocess import PrepareSettings, RawFrame
from backend.video.ready_frames import ready_frames, warm_up



def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> cuda if available else cpu; anything else is passed to torch.device (checked)."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available (use --device cpu)")
    return dev


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass
class FrameTimings:
    """Seconds spent on one frame: waiting for the decoder, preprocessing, model (incl. the overlap
    view), post-processing."""

    decode: float = 0.0
    prepare: float = 0.0
    model: float = 0.0
    post: float = 0.0


@dataclass
class FrameResult:
    """Everything the job layer needs for one processed source frame (numpy, host memory).

    Attributes:
        index: source frame index; time: seconds.
        camera: aligned camera (see `postprocess.CameraResult`).
        people: protocol `frame.people` arrays (world-frame SMPL-X, ids, scores, head_xy).
        points: protocol `frame.points` arrays (xyz, rgb, conf), subsampled per the options.
        chunk: chunk number (0-based); reset: this frame ended its chunk.
        timings: where the time went.
    """

    index: int
    time: float
    camera: CameraResult
    people: dict[str, np.ndarray]
    points: dict[str, np.ndarray]
    chunk: int
    reset: bool
    timings: FrameTimings = field(default_factory=FrameTimings)


@dataclass
class RunState:
    """Explicit state of one `Engine.run` (all bounded in size).

    stream: the model's recurrent state (`backend.model.state.StreamState`; device tensors).
    aligner: running product of the previous chunks' reset-view poses.
    processed: frames processed so far (kept views; overlap views not counted).
    chunk: current chunk number.
    pending_overlap: model inputs of the last reset view, to be re-run as the next chunk's first view.
    """

    stream: Any
    aligner: ChunkAligner
    processed: int = 0
    chunk: int = 0
    pending_overlap: tuple[torch.Tensor, torch.Tensor] | None = None


class Engine:
    """Human3R inference engine, built once per process.

    Attributes:
        model: the network (eval mode) on `device`.
        body: SMPL-X model on `device`.
        checkpoint: `LoadedCheckpoint` metadata (digest, config; weights emptied).
        checkpoint_path: where the weights came from.
        precision: the numeric mode the weights were loaded for ('fp32' or 'fast',
            backend.model.precision); a job's 'auto' means this one.
        graphs: the model's stages run compiled (CUDA graphs on a GPU, backend.model.graphs);
            None at construction = on for CUDA, off elsewhere; False = eager (`--no-graphs`).
        device_preprocessing: where jobs preprocess frames: None = by the job's precision and the
            device (`backend.model.precision.preprocesses_on_device`: fast mode on CUDA); True/False
            forces the device path (`prepare_frame_on`, also on a CPU) or the reference host path.
    """

    def __init__(self, model, body: BodyModel, checkpoint, checkpoint_path: Path, device: torch.device,
                 precision: str = "fp32", graphs: bool | None = None):
        self.model = model
        self.body = body
        self.checkpoint = checkpoint
        self.checkpoint_path = Path(checkpoint_path)
        self.device = device
        self.precision = getattr(model, "precision", precision)
        self._fast_copy = None
        self.graphs = device.type == "cuda" if graphs is None else bool(graphs)
        self.device_preprocessing: bool | None = None

    @classmethod
    def from_paths(cls, checkpoint: str | os.PathLike | None = None, smplx: str | os.PathLike | None = None,
                   device: str = "auto", precision: str = "auto", strict_checkpoint: bool = False,
                   graphs: bool | None = None) -> "Engine":
        """Load the checkpoint and the SMPL-X model.

        Args:
            checkpoint: official .pth, converted .safetensors/.json; None = default location
                (`resolve_checkpoint_path`).
            smplx: SMPL-X file or folder; None = `$HUMAN3R_SMPLX` / default location.
            device: 'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ...
            precision: 'auto' ('fast' on CUDA, else 'fp32'), 'fp32' (parity numerics) or 'fast'/'bf16'
                (bf16 weights cast once here; see backend.model.precision).
            strict_checkpoint: refuse checkpoint keys the model does not use (default: warn, ignore).
            graphs: compiled stages (see the class); None = on for CUDA; False = eager.
        Raises:
            backend.model.checkpoint.CheckpointError (incl. CheckpointNotFoundError),
            backend.smplx_model.SmplxNotFoundError, ValueError (device/precision).
        """
        from backend.model.checkpoint import build_model

        dev = resolve_device(device)
        mode = resolve_precision(precision, dev)
        body = BodyModel.load(smplx, dev)  # cheap and most likely to be missing: fail first
        path = resolve_checkpoint_path(checkpoint)
        warm_up()  # the decoding processes' parent starts while the weights load
        model, loaded = build_model(path, dev, torch.float32, strict=strict_checkpoint)
        if mode == FAST:
            to_fast(model)
        return cls(model, body, loaded, path, dev, mode, graphs)

    @property
    def mhmr_res(self) -> int:
        return int(self.model.config.mhmr_img_res)

    def describe(self) -> dict[str, Any]:
        """Model facts for the result header (`header.model`)."""
        config = self.model.config
        return {
            "name": "human3r",
            "checkpoint": self.checkpoint_path.name,
            "checkpoint_digest": self.checkpoint.digest,
            "checkpoint_format": self.checkpoint.source_format,
            "config": config.to_dict(),
            "device": str(self.device),
            "device_name": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "dtype": self.precision,
            "torch": torch.__version__,
        }

    def job_precision(self, options: JobOptions) -> str:
        """The numeric mode a job runs in ('fp32' or 'fast'): its own, or the engine's for 'auto'."""
        return resolve_precision(options.precision, self.device) if options.precision != "auto" else self.precision

    def model_for(self, options: JobOptions):
        """The network in the job's numeric mode. A 'fast' job on fp32 weights gets a bf16 copy (made
        once); an 'fp32' job cannot run on weights loaded for 'fast' (they are bf16 now)."""
        mode = self.job_precision(options)
        if mode == self.precision:
            return use_graphs(self.model) if self.graphs else self.model
        if mode == FAST:
            if self._fast_copy is None:
                with torch.inference_mode(False):  # ordinary tensors (the DINOv2 table cache reads versions)
                    self._fast_copy = to_fast(without_graphs(copy.deepcopy(self.model)))
            return use_graphs(self._fast_copy) if self.graphs else self._fast_copy
        raise ValueError("precision 'fp32' needs fp32 weights, but this engine loaded the model for 'fast' "
                         "(bf16); restart it with --precision fp32 or submit the job with precision 'fast'/'auto'")

    def _model_step(self, run: RunState, img: torch.Tensor, img_mhmr: torch.Tensor, reset: bool, options: JobOptions):
        """One model step (no tracking): advances `run.stream` but its tracker state; returns the outputs.
        Waits for the device once, for the person count."""
        # the engine reads neither the world-frame maps (points come from the camera-frame map and the
        # aligned camera) nor the rgb map: skip them
        out, stream = self.model_for(options).step(
            run.stream, img, img_mhmr, reset=reset, use_ttt3r=options.ttt3r, want_cross=False, track=False,
            detection_threshold=options.detection_threshold)
        run.stream = dataclasses.replace(stream, track=run.stream.track)
        return out

    def _track(self, run: RunState, out, tokens: np.ndarray | None) -> None:
        """Track ids of a step's people from their tokens [1, n, D] (host copy): sets `out.smpl_id`.
        The tracker runs on the host: on a GPU its tiny data-dependent ops would each wait for the device."""
        if tokens is None:
            return
        with on_host():
            out.smpl_id, track = assign_ids(run.stream.track, torch.from_numpy(np.array(tokens)))
        run.stream = dataclasses.replace(run.stream, track=track)

    def _step(self, run: RunState, img: torch.Tensor, img_mhmr: torch.Tensor, reset: bool, options: JobOptions):
        """A model step and its tracking (the overlap view's: nothing else of it is read)."""
        out = self._model_step(run, img, img_mhmr, reset, options)
        tokens = {"tokens": out.smpl_token} if out.smpl_token is not None else {}
        self._track(run, out, copy_to_host(tokens).get("tokens"))
        return out

    def use_cpu_threads(self, threads: int | None = None) -> int:
        """Set torch's intra-op threads for a model on the CPU; returns the count in use.

        Default (`cpu_threads.model_threads`): every core for a real-size model, every core but one
        (left to the decoding process) for a model that takes milliseconds per frame.
        No effect when the model runs on a GPU.
        """
        if self.device.type != "cpu":
            return torch.get_num_threads()
        if threads is None:
            threads = model_threads(self.model.config, available_cores())
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1, got {threads!r}")
        torch.set_num_threads(threads)
        return threads

    @property
    def decode_threads(self) -> int:
        """FFmpeg decoder threads for this engine's jobs: one when the model runs on the CPU (more
        would pre-empt the model's threads), FFmpeg's choice otherwise."""
        return 1 if self.device.type == "cpu" else 0

    def prepare_settings(self, options: JobOptions) -> PrepareSettings:
        """The job's preprocessing: its size and JPEG round trip, and where it runs (see the class)."""
        on_device = self.device_preprocessing
        if on_device is None:
            on_device = preprocesses_on_device(self.job_precision(options), self.device)
        return PrepareSettings(size=options.size, mhmr_res=self.mhmr_res, jpeg_roundtrip=options.jpeg_roundtrip,
                               device=str(self.device) if on_device else None)

    def prepare(self, rgb: np.ndarray, options: JobOptions):
        """Model inputs of one upright uint8 RGB frame (`backend.video.preprocess.PreparedFrame`; on the
        device when the job preprocesses there)."""
        settings = self.prepare_settings(options)
        return settings.finish(settings.on_decoder(rgb))

    @torch.inference_mode()
    def init_run(self) -> RunState:
        """Fresh state for a new video."""
        return RunState(stream=self.model.init_stream(), aligner=ChunkAligner())

    @torch.inference_mode()
    def process_frame(self, run: RunState, index: int, time_s: float, rgb: np.ndarray | None, options: JobOptions,
                      timings: FrameTimings | None = None, prepared=None) -> FrameResult:
        """Run one source frame through preprocessing (unless `prepared` is given), the model and
        post-processing, advancing `run`."""
        return self._host_half(self._model_half(run, index, time_s, rgb, options, timings, prepared), options)

    @torch.inference_mode()
    def _model_half(self, run: RunState, index: int, time_s: float, rgb: np.ndarray | None, options: JobOptions,
                    timings: FrameTimings | None = None, prepared=None) -> "_ModelDone":
        """Everything of a frame that touches the model or `run`: preprocessing (unless `prepared`), the
        step(s), the one device -> host copy and the tracker."""
        timings = timings or FrameTimings()
        t0 = time.perf_counter()
        if prepared is None:
            prepared = self.prepare(rgb, options)
            timings.prepare = time.perf_counter() - t0
        elif isinstance(prepared, RawFrame):  # the decoder's share of a frame preprocessed on the device
            prepared = self.prepare_settings(options).finish(prepared)
        img = prepared.img.to(self.device, non_blocking=True)
        img_mhmr = prepared.img_mhmr.to(self.device, non_blocking=True)
        t1 = time.perf_counter()
        if run.pending_overlap is not None:  # first view of the new chunk: the previous reset image again
            self._step(run, *run.pending_overlap, reset=False, options=options)
            run.pending_overlap = None
            run.chunk += 1
        reset = (run.processed + 1) % options.reset_interval == 0
        out = self._model_step(run, img, img_mhmr, reset, options)
        c2w = run.aligner.align(pose_encoding_to_c2w(out.camera_pose[0].float()), reset)
        arrays = frame_to_host(out, c2w, self.body, options)  # the frame's one device -> host copy
        self._track(run, out, arrays.get("tokens"))
        with on_host():
            ids = out.smpl_id[0].numpy() if out.smpl_id is not None else np.zeros(0, np.int32)
        if reset:
            run.pending_overlap = (img, img_mhmr)
        run.processed += 1
        timings.model = time.perf_counter() - t1
        return _ModelDone(index, float(time_s), arrays, ids, prepared, run.chunk, reset, timings)

    @staticmethod
    def _host_half(done: "_ModelDone", options: JobOptions) -> FrameResult:
        """Post-processing of a frame on the host copy (any thread; reads nothing the model changes)."""
        t0 = time.perf_counter()
        with on_host():
            camera, people, points = frame_results(done.arrays, done.ids, done.prepared.geometry,
                                                   done.prepared.colors, options)
        done.timings.post = time.perf_counter() - t0
        return FrameResult(done.index, done.time, camera, people, points, done.chunk, done.reset, done.timings)

    def run(self, source, options: JobOptions, state: RunState | None = None, prefetch: str = "process",
            pipeline: bool | None = None, cancel: threading.Event | None = None) -> Iterator[FrameResult]:
        """Process every frame of `source` (a `backend.video.reader.FrameSource`), yielding results.

        Args:
            source: iterable of `SourceFrame(index, time, rgb)`; decoding errors propagate
                (`VideoError`) after the frames before them were yielded.
            options: the job's options (reset interval, TTT3R, thresholds, point subsampling, size).
            state: resume from an explicit `RunState` (default: a fresh one).
            prefetch: where frames are decoded and preprocessed while the model runs: "process"
                (default), "thread" or "off" (see `backend.video.ready_frames`); memory stays bounded.
            pipeline: run the model half of frame t on a worker thread while the caller
                post-processes and uses frame t-1 (`run_ahead`, one frame ahead); None = on for a
                CUDA device. Results are the same either way.
            cancel: with a pipeline, the worker's model steps stop mid-frame once it is set
                (`JobInterrupted`, delivered in order); without one, use `interruptible` around `next`.
        """
        run = state or self.init_run()
        if pipeline is None:
            pipeline = self.device.type == "cuda"
        model_frames = self._model_frames(run, source, options, prefetch, cancel if pipeline else None)
        if pipeline:
            model_frames = run_ahead(model_frames, depth=1, name="engine-model")
        try:
            for done in model_frames:
                yield self._host_half(done, options)
        finally:
            model_frames.close()

    def _model_frames(self, run: RunState, source, options: JobOptions, prefetch: str,
                      cancel: threading.Event | None) -> Iterator["_ModelDone"]:
        settings = self.prepare_settings(options)
        decoded = ready_frames(source, settings, prefetch, self.decode_threads)
        frames = finished_frames(decoded, settings, ahead=not getattr(source, "is_live", False))
        try:  # inference mode is entered per frame, never held across a yield
            for frame in frames:
                timings = FrameTimings(decode=frame.decode_s, prepare=frame.prepare_s)
                with interruptible(cancel):
                    done = self._model_half(run, frame.index, frame.time, None, options, timings, frame.prepared)
                yield done
        finally:
            frames.close()
            decoded.close()  # stops the decoder now, not when the look-ahead is collected


@dataclass
class _ModelDone:
    """A frame after its model half: the host copy of its arrays, track ids, and what its host half needs."""

    index: int
    time: float
    arrays: dict[str, np.ndarray]
    ids: np.ndarray
    prepared: Any
    chunk: int
    reset: bool
    timings: FrameTimings
