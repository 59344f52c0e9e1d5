"""The Human3R inference server (`human3r serve`): ZeroMQ ROUTER in front of one device.

Modules, one job each:
- `settings`  — `ServerSettings`: every limit and timing, with the defaults;
- `security`  — bind policy, CurveZMQ keys and ZAP allow-list, video path checks;
- `streams`   — bounded, credit-aware per-job outbound queues and the socket-thread waker;
- `jobs`      — job table, FIFO queue, the worker thread (runs the engine, writes .h3r), fetch threads;
- `retention` — deletes old result files (age limit, then oldest first over a size budget);
- `app`       — `Server`: the socket thread (requests, heartbeats, peers, sending).

The commands that start it (`human3r serve`, `human3r keys`) and the remote side of `human3r infer
--server` live in `backend.cli`; nothing here imports the engine or the command line.

The client side lives in `blender_addon.client` (no torch, no bpy), the wire format in
`blender_addon.core.protocol`.
"""
