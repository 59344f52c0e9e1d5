"""Video input for the engine.

- `backend.video.reader` (no torch): `open_source(path, start=, end=, stride=, max_pixels=)` streams upright
  uint8 RGB `SourceFrame`s from a video file or an image folder, with `VideoInfo` and `VideoError` codes.
- `backend.video.preprocess` (torch): `prepare_frame(rgb, size=512, mhmr_res=896)` makes the model's two
  input tensors exactly like the reference, plus `FrameGeometry` to map model pixels and intrinsics back
  to original-frame pixels; `PrepareSettings` bundles a job's preprocessing arguments.
- `backend.video.ready_frames` (torch): `ready_frames(source, settings)` decodes and prepares frames ahead
  of the model, in a decoding process (`decoding_process`, started through `decoding_preload`), a
  thread, or inline. The engine consumes its `ReadyFrame`s.

Only the reader is re-exported here, so that importing this package never pulls in torch.
"""
from .reader import DEFAULT_MAX_PIXELS, FrameSource, SourceFrame, VideoError, VideoInfo, open_source

__all__ = ["DEFAULT_MAX_PIXELS", "FrameSource", "SourceFrame", "VideoError", "VideoInfo", "open_source"]
