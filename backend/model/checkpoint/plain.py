"""Turning the unpickler's inert stand-ins into plain Python data (dicts, lists, strings, numbers).

OmegaConf objects pickle as ``DictConfig``/``ListConfig`` whose state holds ``_content`` (a dict/list of
child nodes), ``_metadata`` and ``_parent`` (a back-reference, skipped here); value nodes
(``AnyNode``, ``StringNode``...) hold their value in ``_val``. So ``checkpoint['args'].model`` becomes
``plain['args']['model']``.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from backend.model.checkpoint.errors import CorruptCheckpointError
from backend.model.checkpoint.unpickler import CORRUPT_HINT, Inert, StorageType, load_torch_raw


_OMEGA_CONTAINERS = ("omegaconf.dictconfig.DictConfig", "omegaconf.listconfig.ListConfig")
_SKIP_STATE_KEYS = {"_parent", "_metadata", "_flags_cache"}


def to_plain(obj: Any, _memo: dict[int, Any] | None = None, _depth: int = 0) -> Any:
    """Turn stand-ins into plain Python data; tensors, numbers and strings pass through.

    DictConfig -> dict, ListConfig -> list, OmegaConf value nodes -> their value, Namespace -> dict,
    paths -> str, class references (``typing.Any``, ``builtins.dict``) -> their dotted name.
    """
    memo = {} if _memo is None else _memo
    if _depth > 200:
        raise CorruptCheckpointError("the checkpoint's config is nested too deeply", CORRUPT_HINT)
    if isinstance(obj, torch.Tensor):
        if obj._backward_hooks or obj.grad_fn is not None or type(obj) is not torch.Tensor:
            raise CorruptCheckpointError("a tensor in the checkpoint carries autograd hooks or a subclass; "
                                         "plain saved weights never do", CORRUPT_HINT)
        return obj
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None))):
        return obj
    if id(obj) in memo:
        return memo[id(obj)]
    recurse = lambda value: to_plain(value, memo, _depth + 1)  # noqa: E731
    if isinstance(obj, type) and issubclass(obj, Inert):
        return obj.global_name
    if isinstance(obj, StorageType):
        return f"torch.{obj.name}"
    if isinstance(obj, dict):  # dict, OrderedDict
        return _plain_dict(obj, id(obj), memo, recurse, OrderedDict() if isinstance(obj, OrderedDict) else {})
    if isinstance(obj, list):
        return _plain_list(obj, id(obj), memo, recurse)
    if isinstance(obj, (tuple, set, frozenset)):
        return type(obj)(recurse(v) for v in obj)
    if isinstance(obj, Inert):
        return _inert_to_plain(obj, memo, recurse)
    return obj


def _plain_dict(src: dict, memo_key: int, memo: dict[int, Any], recurse: Callable[[Any], Any],
                out: dict[Any, Any]) -> dict[Any, Any]:
    """Plain copy of a mapping; registered in `memo` under the id of the object it stands for first,
    so self-references resolve to the copy."""
    memo[memo_key] = out
    for key, value in src.items():
        out[key if isinstance(key, str) else recurse(key)] = recurse(value)
    return out


def _plain_list(src: list, memo_key: int, memo: dict[int, Any], recurse: Callable[[Any], Any]) -> list[Any]:
    out: list[Any] = []
    memo[memo_key] = out
    out.extend(recurse(v) for v in src)
    return out


def _inert_to_plain(obj: Inert, memo: dict[int, Any], recurse: Callable[[Any], Any]) -> Any:
    name = obj.global_name
    state = obj.state if isinstance(obj.state, dict) else {}
    if name in _OMEGA_CONTAINERS:
        content = state.get("_content")
        if isinstance(content, dict):
            return _plain_dict(content, id(obj), memo, recurse, {})
        if isinstance(content, list):
            return _plain_list(content, id(obj), memo, recurse)
        return recurse(content)  # None, '???' (missing) or an interpolation string
    if name.startswith("omegaconf.") and "_val" in state:
        return recurse(state["_val"])
    if name in ("collections.defaultdict", "builtins.dict"):
        out = {}
        memo[id(obj)] = out
        if name == "builtins.dict" and obj.args and isinstance(obj.args[0], (dict, list)):
            out.update(recurse(dict(obj.args[0])))
        for key, value in obj.items_set:
            out[recurse(key)] = recurse(value)
        return out
    if name == "argparse.Namespace":
        out = {}
        memo[id(obj)] = out
        for key, value in {**obj.kwargs, **state}.items():
            out[key] = recurse(value)
        return out
    if name.startswith("pathlib."):
        parts = [p for p in obj.args if isinstance(p, str)]
        return "/".join(parts).replace("//", "/")
    if name in ("builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset"):
        values = list(obj.args[0]) if obj.args and isinstance(obj.args[0], (list, tuple)) else []
        return recurse(values + obj.items_appended)
    if name in ("builtins.int", "builtins.float", "builtins.str", "builtins.bool") and obj.args:
        return recurse(obj.args[0])
    if name == "builtins.complex" and all(isinstance(a, (int, float)) for a in obj.args[:2]):
        return complex(*obj.args[:2])
    if name.endswith("multiarray.scalar"):
        return _numpy_scalar(obj)
    if name == "torch.device" and obj.args and isinstance(obj.args[0], str):
        index = obj.args[1] if len(obj.args) > 1 and isinstance(obj.args[1], int) else None
        return obj.args[0] if index is None else f"{obj.args[0]}:{index}"
    if name == "torch.torch_version.TorchVersion" and obj.args and isinstance(obj.args[0], str):
        return obj.args[0]
    if name.endswith("multiarray._reconstruct"):
        return _numpy_array(obj)
    # anything else (metadata objects, unknown omegaconf internals): keep its recorded state as a dict
    out = {"__class__": name}
    memo[id(obj)] = out
    for key, value in state.items():
        if key not in _SKIP_STATE_KEYS:
            out[key] = recurse(value)
    return out


_NUMPY_SCALAR_CODES = {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1", "c8", "c16"}


MAX_NUMPY_ARRAY_BYTES = 1 << 20  # arrays in a training config are tiny; bigger ones are not read


def _numpy_array(obj: Inert) -> Any:
    """``numpy.core.multiarray._reconstruct`` + its BUILD state -> a read-only numpy array.

    Numeric dtypes only (an object array would need pickled Python objects), at most 1 MB."""
    import numpy as np

    state = obj.state
    if not (isinstance(state, tuple) and len(state) == 5):
        raise CorruptCheckpointError("a numpy array in the checkpoint has no readable state", CORRUPT_HINT)
    _version, shape, dtype, fortran, raw = state
    code = dtype.args[0] if isinstance(dtype, Inert) and dtype.args and isinstance(dtype.args[0], str) else None
    order = dtype.state[1] if isinstance(dtype, Inert) and isinstance(dtype.state, tuple) and len(dtype.state) > 1 else "<"
    if code not in _NUMPY_SCALAR_CODES or order not in ("<", ">", "|", "="):
        raise CorruptCheckpointError(f"a numpy array in the checkpoint has dtype {code!r}; only numeric arrays are "
                                     "read", CORRUPT_HINT)
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else None
    if shape is None or not all(isinstance(n, int) and n >= 0 for n in shape) or not isinstance(raw, bytes) \
            or len(raw) > MAX_NUMPY_ARRAY_BYTES:
        raise CorruptCheckpointError("a numpy array in the checkpoint is malformed or larger than 1 MB", CORRUPT_HINT)
    array_dtype = np.dtype(code).newbyteorder(order if order != "|" else "=")
    count = int(np.prod(shape)) if shape else 1
    if count * array_dtype.itemsize != len(raw):
        raise CorruptCheckpointError("a numpy array in the checkpoint has the wrong number of bytes", CORRUPT_HINT)
    array = np.frombuffer(raw, dtype=array_dtype).reshape(shape, order="F" if fortran else "C")
    return array.astype(array_dtype.newbyteorder("="), copy=False)


def _numpy_scalar(obj: Inert) -> Any:
    """``numpy.core.multiarray.scalar(dtype, bytes)`` -> Python number (numeric dtypes only)."""
    import numpy as np

    if len(obj.args) < 2 or not isinstance(obj.args[0], Inert) or not isinstance(obj.args[1], bytes):
        return None
    dtype_args = obj.args[0].args
    code = dtype_args[0] if dtype_args and isinstance(dtype_args[0], str) else None
    if code not in _NUMPY_SCALAR_CODES:
        return None
    return np.frombuffer(obj.args[1], dtype=np.dtype(code)).reshape(())[()].item()


def load_torch_file(path: str | Path) -> tuple[Any, str]:
    """Read a ``torch.save`` file safely as plain data; returns ``(object, 'torch-zip' | 'torch-legacy')``.

    Nothing from the pickle is imported or called beyond the allow-list of `unpickler`;
    OmegaConf configs / Namespaces come back as dicts, tensors as CPU tensors.
    """
    raw, fmt = load_torch_raw(path)
    try:
        return to_plain(raw), fmt
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptCheckpointError(f"{path}: unexpected data in the checkpoint: {exc}", CORRUPT_HINT) from None
