"""Human3R network (float32 PyTorch reimplementation of the reference online inference path).

Public API (import from the submodules; nothing is imported here so that `backend.model.checkpoint`
stays importable without building the network):

- `backend.model.human3r.Human3R(config)`: the module; `init_stream()` and `step(...)` (streaming).
- `backend.model.human3r.view_schedule(num_frames, reset_interval)`: the reference view order.
- `backend.model.state.StreamState` / `FrameOutputs`: typed state and per-view outputs.

Layout: `layers/` (RoPE, attention, MLPs, blocks), `encoder.py` (CroCo), `dinov2.py`,
`decoder.py` (paired state/image decoder), `pose_retriever.py`, `heads/` (DPT, camera, human,
activations, the composed `downstream_head`), `tracker.py`, `state.py`, `human3r.py`, and the
`checkpoint/` package (reading, checking, converting and loading checkpoints).
"""
