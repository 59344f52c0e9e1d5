"""One device -> host copy for everything a frame's host work reads.

Every separate `.cpu()` is a round trip that makes the host wait for the device. A frame's
post-processing and tracker need about a dozen arrays (camera, focal, people, score map, points,
confidence, human mask, tracker tokens): they are flattened into one float32 buffer on the device,
copied once (into page-locked memory on CUDA, so the copy is a plain DMA), and unpacked on the host as
numpy views of that buffer. On a CPU the same code runs with the concatenated buffer itself.
"""
from __future__ import annotations

import math

import numpy as np
import torch


def copy_to_host(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Device tensors (any float dtype, one device) -> float32 numpy arrays of the same shapes.

    The arrays are read-only views of one host buffer made for this call (later calls never
    overwrite it, so a worker thread may keep reading them).
    """
    if not tensors:
        return {}
    flat = torch.cat([t.detach().reshape(-1).float() for t in tensors.values()])
    if flat.device.type == "cuda":
        host = torch.empty(flat.shape, dtype=flat.dtype, pin_memory=True)  # from torch's pinned cache
        host.copy_(flat, non_blocking=True)
        torch.cuda.current_stream(flat.device).synchronize()  # the frame's one wait for the device
    else:
        host = flat
    data = host.numpy()
    data.flags.writeable = False
    arrays, start = {}, 0
    for key, t in tensors.items():
        size = math.prod(t.shape)
        arrays[key] = data[start:start + size].reshape(t.shape)
        start += size
    return arrays
