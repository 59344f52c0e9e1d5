"""Count the places where code would make the host wait for a GPU, while running on any device.

On CUDA, `torch.cuda.set_sync_debug_mode` reports synchronising calls, but only there. This audit
works on a CPU too (tests, CI): it watches the operations that block the host when the tensors live
on a GPU, and records where they were called from.

Kinds:
- "scalar": a tensor value read on the host (`.item()`, `int(t)`, `bool(t)`, `.tolist()`).
- "nonzero": a data-dependent shape (`nonzero`, `torch.where(cond)`, boolean indexing, masked_select).
- "host_constant": a tensor built from host data (`torch.tensor(...)`): a host->device copy on a GPU.
- "to_host": a device->host copy (`.cpu()`, `.numpy()`, `.to("cpu")`).

    with SyncAudit() as audit:
        model.step(...)
    audit.count("nonzero"), audit.events  # [(kind, what, 'file:line'), ...]

Work on host copies (the tracker and post-processing after the frame's one device->host copy) runs
inside `on_host()`: on a CPU run its tensors cannot be told from device ones, and it never syncs.
"""
from __future__ import annotations

import contextlib
import threading
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# composite ops are seen undecomposed under inference mode (item, where(cond)): list both forms
_SCALAR_OPS = {aten._local_scalar_dense.default, aten.item.default, aten.is_nonzero.default}
_NONZERO_OPS = {aten.nonzero.default, aten.where.default, aten.masked_select.default}
_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default}
_REPO = Path(__file__).resolve().parents[2]
_host = threading.local()


@contextlib.contextmanager
def on_host():
    """Marks work on host copies: nothing inside is recorded (it cannot wait for a device)."""
    _host.depth = getattr(_host, "depth", 0) + 1
    try:
        yield
    finally:
        _host.depth -= 1


def _is_bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


def _caller() -> str:
    """The innermost stack frame inside this repository (outside this file)."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        path = Path(frame.filename)
        inside = _REPO in path.parents and not {".venv", "site-packages"} & set(path.parts)
        if path.name != "sync_audit.py" and inside:
            return f"{path.relative_to(_REPO)}:{frame.lineno}"
    return "?"


@dataclass
class _Recorder:
    events: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, kind: str, what: str) -> None:
        if getattr(_host, "depth", 0):
            return
        self.events.append((kind, what, _caller()))


class _Dispatch(TorchDispatchMode):
    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in _SCALAR_OPS:
            self.rec.add("scalar", str(func))
        elif func in _NONZERO_OPS or (func in _INDEX_OPS and _is_bool_index(args)):
            self.rec.add("nonzero", str(func))
        elif func is aten.lift_fresh.default:
            self.rec.add("host_constant", str(func))
        return func(*args, **(kwargs or {}))


class _Function(TorchFunctionMode):
    def __init__(self, rec: _Recorder) -> None:
        super().__init__()
        self.rec = rec

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        kwargs = kwargs or {}
        if name in ("cpu", "numpy"):
            self.rec.add("to_host", name)
        elif name == "to" and _targets_cpu(args, kwargs):
            self.rec.add("to_host", "to(cpu)")
        elif name == "tolist":
            self.rec.add("scalar", name)
        return func(*args, **kwargs)


def _targets_cpu(args, kwargs) -> bool:
    """`.to("cpu")` written as a string: a copy to the host whatever device the model is on. (A
    `.to(model_device)` is not counted: on a CPU run it cannot be told from an input upload.)"""
    target = kwargs.get("device", args[1] if len(args) > 1 else None)
    return isinstance(target, str) and target.split(":")[0] == "cpu"


class SyncAudit(contextlib.AbstractContextManager):
    """Records would-be host synchronisations inside its `with` block (see the module docstring)."""

    def __init__(self) -> None:
        self._rec = _Recorder()
        self._stack: contextlib.ExitStack | None = None

    @property
    def events(self) -> list[tuple[str, str, str]]:
        return list(self._rec.events)

    def count(self, kind: str | None = None) -> int:
        return sum(1 for k, _, _ in self._rec.events if kind is None or k == kind)

    def __enter__(self) -> "SyncAudit":
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(_Function(self._rec))
        self._stack.enter_context(_Dispatch(self._rec))
        return self

    def __exit__(self, *exc) -> None:
        assert self._stack is not None
        self._stack.close()
        self._stack = None
