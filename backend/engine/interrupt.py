"""Stop a running model step mid-frame when its job is cancelled.

A frame at the costliest options takes many seconds, so checking `cancel` only between frames lets
a cancelled job hold the device that long. While `interruptible(cancel)` is active, every
`torch.nn.Module` call first checks the event and raises `JobInterrupted` once it is set, so the
step unwinds within one layer's time (milliseconds to well under a second).
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterator


class JobInterrupted(Exception):
    """The job's cancel event was set while the model was running a frame."""


@contextlib.contextmanager
def interruptible(cancel: threading.Event | None) -> Iterator[None]:
    """Make module calls in this thread raise `JobInterrupted` once `cancel` is set."""
    if cancel is None:
        yield
        return
    import torch

    owner = threading.get_ident()

    def check(module, inputs):
        if cancel.is_set() and threading.get_ident() == owner:
            raise JobInterrupted("cancelled")

    handle = torch.nn.modules.module.register_module_forward_pre_hook(check)
    try:
        yield
    finally:
        handle.remove()
