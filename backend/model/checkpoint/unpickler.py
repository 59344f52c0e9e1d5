"""Reading PyTorch ``.pth`` files without running code from the pickle.

A pickle can name any importable callable and call it (``os.system``, ``builtins.eval``...). This
reader overrides `find_class` so a pickle only ever gets:

- our own reimplementations of torch's tensor-rebuild functions (they build CPU tensors from the
  archive's raw storages with ``Tensor.set_``, after bounds checks), and `collections.OrderedDict`;
- *inert stand-ins* for harmless data classes (OmegaConf ``DictConfig``/``ListConfig``/nodes and their
  metadata, ``argparse.Namespace``, builtin container types used as values, ``typing.Any``, ``pathlib``
  paths, ``defaultdict``, numpy scalars and small numeric arrays, ``torch.device``, ``TorchVersion``;
  torch dtypes become their names). A stand-in only records the arguments and state the pickle
  gives it; nothing of the named class is imported or called. `plain.to_plain` turns them into plain
  dicts / lists / strings / numbers.

Every other global raises `UnsafeCheckpointError` naming it, before anything is called.

Formats: the torch zip archive (``archive/data.pkl`` + ``archive/data/<key>``; torch >= 1.6) and the
legacy non-zip stream (magic, protocol, sys-info, pickle, storage keys, raw storages; torch < 1.6).
"""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import struct
import warnings
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from backend.model.checkpoint.errors import CorruptCheckpointError, UnsafeCheckpointError, UnsupportedFormatError

# legacy torch stream constants (torch/serialization.py)
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}

MAX_PICKLE_BYTES = 256 << 20  # a release's data.pkl is a few MB; more is not a checkpoint
CORRUPT_HINT = "the file is truncated or damaged; download it again (compare its size/sha256 with the release)"


# --------------------------------------------------------------------------------------------------
# stand-ins

class StorageType:
    """Marker for ``torch.<X>Storage`` globals: only carries the dtype."""

    def __init__(self, name: str, dtype: torch.dtype) -> None:
        self.name, self.dtype = name, dtype


class Inert:
    """Base of the stand-in classes: records what the pickle hands to the named class, runs nothing."""

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Inert":
        obj = object.__new__(cls)
        obj.args, obj.kwargs, obj.state = args, kwargs, None
        obj.items_set = []  # (key, value) pairs from SETITEM(S)
        obj.items_appended = []  # values from APPEND(S)
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items_set.append((key, value))

    def append(self, value: Any) -> None:
        self.items_appended.append(value)

    def extend(self, values: Any) -> None:
        self.items_appended.extend(list(values) if isinstance(values, (list, tuple)) else [])

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


_INERT_CLASSES: dict[str, type[Inert]] = {}


def _inert_class(full_name: str) -> type[Inert]:
    cls = _INERT_CLASSES.get(full_name)
    if cls is None:
        cls = type(f"Inert[{full_name}]", (Inert,), {"global_name": full_name})
        _INERT_CLASSES[full_name] = cls
    return cls


# Data-only classes that may appear in a training checkpoint's non-tensor entries.
_INERT_EXACT = {
    "builtins.dict", "builtins.list", "builtins.tuple", "builtins.set", "builtins.frozenset", "builtins.int",
    "builtins.float", "builtins.bool", "builtins.str", "builtins.bytes", "builtins.bytearray", "builtins.complex",
    "builtins.object", "builtins.NoneType", "builtins.type",
    "collections.defaultdict", "argparse.Namespace",
    "pathlib.Path", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath", "pathlib.PureWindowsPath",
    "numpy.dtype", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar",
    "torch._tensor.Tensor", "torch.Tensor", "torch.nn.parameter.Parameter",
    # what torch's own weights_only loader also accepts: devices, version strings, small numpy arrays
    "torch.device", "torch.torch_version.TorchVersion", "numpy.ndarray",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct",
}
_INERT_MODULES = ("omegaconf", "typing")


# --------------------------------------------------------------------------------------------------
# safe tensor rebuild functions (same call signatures as torch._utils)

class _StorageRef:
    """An archive storage: untyped bytes plus the dtype the pickle declared."""

    def __init__(self, untyped: torch.UntypedStorage, dtype: torch.dtype) -> None:
        self.untyped, self.dtype = untyped, dtype


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if isinstance(value, (tuple, list, torch.Size)) and all(isinstance(v, int) and v >= 0 for v in value):
        return tuple(value)
    raise CorruptCheckpointError(f"bad tensor {what} in the pickle: {value!r}", CORRUPT_HINT)


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any, *_ignored: Any) -> torch.Tensor:
    """Safe `_rebuild_tensor`/`_rebuild_tensor_v2`: a CPU tensor view of an archive storage (bounds-checked)."""
    if not isinstance(storage, _StorageRef):
        raise CorruptCheckpointError(f"tensor rebuild got {type(storage).__name__} instead of a storage", CORRUPT_HINT)
    size, stride = _int_tuple(size, "size"), _int_tuple(stride, "stride")
    if not isinstance(storage_offset, int) or storage_offset < 0 or len(size) != len(stride):
        raise CorruptCheckpointError("bad tensor offset/stride in the pickle", CORRUPT_HINT)
    itemsize = torch.empty((), dtype=storage.dtype).element_size()
    numel_available = storage.untyped.nbytes() // itemsize
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else storage_offset - 1
    if last >= numel_available and all(size):
        raise CorruptCheckpointError(
            f"tensor of size {size} at offset {storage_offset} overruns its storage ({numel_available} elements)",
            CORRUPT_HINT)
    tensor = torch.empty((0,), dtype=storage.dtype)
    return tensor.set_(storage.untyped, storage_offset, size, stride)


def _rebuild_parameter(data: Any, *_ignored: Any) -> torch.Tensor:
    """Safe `_rebuild_parameter(_with_state)`: plain tensor (parameters are rebuilt by the model)."""
    if not isinstance(data, torch.Tensor):
        raise CorruptCheckpointError("parameter rebuild without tensor data", CORRUPT_HINT)
    return data


def _rebuild_from_type_v2(func: Any, _new_type: Any, args: Any, _state: Any) -> Any:
    """Safe `_rebuild_from_type_v2`: `func` is already one of ours (it went through `find_class`)."""
    if func not in (_rebuild_tensor, _rebuild_parameter) or not isinstance(args, tuple):
        raise CorruptCheckpointError("unexpected tensor subclass rebuild in the pickle", CORRUPT_HINT)
    return func(*args)


def _codecs_encode(text: Any, encoding: Any = "utf-8", *_ignored: Any) -> bytes:
    """Protocol-2 pickles store `bytes` as ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise CorruptCheckpointError("unexpected _codecs.encode call in the pickle", CORRUPT_HINT)
    return text.encode(encoding)


def _torch_size(dims: Any = ()) -> tuple[int, ...]:
    return _int_tuple(dims, "size")


_ALLOWED_CALLABLES: dict[str, Callable[..., Any] | type] = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
    "torch.Size": _torch_size,
    "collections.OrderedDict": OrderedDict,
    "_codecs.encode": _codecs_encode,
}


def resolve_global(module: str, name: str) -> Any:
    """What a pickle gets for ``module.name``: an allowed function, a stand-in, or `UnsafeCheckpointError`."""
    if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol-2 names written by Python 2 rules
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    elif module in _compat_pickle.IMPORT_MAPPING:
        module = _compat_pickle.IMPORT_MAPPING[module]
    full = f"{module}.{name}"
    if full in _ALLOWED_CALLABLES:
        return _ALLOWED_CALLABLES[full]
    if module in ("torch", "torch.storage") and name in _STORAGE_DTYPES:
        return StorageType(name, _STORAGE_DTYPES[name])
    if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
        return f"torch.{name}"  # a dtype value (torch.float16) becomes its name
    if full in _INERT_EXACT or (module.split(".")[0] in _INERT_MODULES and name.isidentifier()
                                and not name.startswith("__")):
        return _inert_class(full)
    raise UnsafeCheckpointError(full)


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, load_storage: Callable[[tuple], Any] | None) -> None:
        super().__init__(file)
        self._load_storage = load_storage

    def find_class(self, module: str, name: str) -> Any:
        return resolve_global(module, name)

    def persistent_load(self, pid: Any) -> Any:
        if self._load_storage is None or not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise CorruptCheckpointError(f"unexpected persistent id in the pickle: {str(pid)[:80]}", CORRUPT_HINT)
        return self._load_storage(pid)


_MEMO_PUTS = {"PUT", "BINPUT", "LONG_BINPUT"}


def _prescan(stream: BinaryIO) -> None:
    """Walk the opcodes once without building anything; reject what could exhaust memory.

    CPython's unpickler sizes its memo table by the largest ``PUT`` index, so a 4-byte index of
    0xFFFFFFFF would make it allocate and clear ~32 GB. Honest pickles number their memo entries
    sequentially, so an index beyond the opcode count is refused. Length fields that point past the
    end of the data are caught here too (genops reads them from the stream).
    """
    start = stream.tell()
    try:
        with warnings.catch_warnings():  # pickletools warns on odd escapes in protocol-0 strings
            warnings.simplefilter("ignore", DeprecationWarning)
            for count, (opcode, arg, _pos) in enumerate(pickletools.genops(stream)):
                if opcode.name in _MEMO_PUTS and int(arg) > count:
                    raise CorruptCheckpointError(f"the pickle uses memo index {arg} after {count} opcodes",
                                                 CORRUPT_HINT)
    except CorruptCheckpointError:
        raise
    except (ValueError, EOFError, TypeError, OverflowError, MemoryError) as exc:
        raise CorruptCheckpointError(f"the checkpoint's pickle stream is damaged: {exc}", CORRUPT_HINT) from None
    stream.seek(start)


def restricted_loads(data: bytes | BinaryIO, load_storage: Callable[[tuple], Any] | None = None) -> Any:
    """Unpickle with the allow-list (stand-ins are not converted to plain data).

    `data` is the pickle's bytes or a seekable binary stream positioned at its start (left just past
    the pickle's STOP, like `pickle.load`). Raises `UnsafeCheckpointError` for a refused global,
    `CorruptCheckpointError` for a damaged stream.
    """
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    _prescan(stream)
    try:
        return _RestrictedUnpickler(stream, load_storage).load()
    except (UnsafeCheckpointError, CorruptCheckpointError, UnsupportedFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError, struct.error, MemoryError, RecursionError, ArithmeticError, SystemError) as exc:
        raise CorruptCheckpointError(f"the checkpoint's pickle stream is damaged: {type(exc).__name__}: {exc}",
                                     CORRUPT_HINT) from None


# --------------------------------------------------------------------------------------------------
# torch file formats

def _zip_load(path: Path) -> Any:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise CorruptCheckpointError(f"{path} is not a readable PyTorch zip archive ({exc})", CORRUPT_HINT) from None
    with archive, open(path, "rb") as raw_file:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise CorruptCheckpointError(f"{path}: expected one <archive>/data.pkl in the zip, found {len(pickles)}",
                                         CORRUPT_HINT)
        prefix = pickles[0][: -len("data.pkl")]
        byteorder_name = prefix + "byteorder"
        if byteorder_name in archive.namelist() and archive.read(byteorder_name).strip() not in (b"little", b""):
            raise UnsupportedFormatError(f"{path} was saved on a big-endian machine", "re-save it on x86/ARM")
        storages: dict[str, _StorageRef] = {}

        def load_storage(pid: tuple) -> _StorageRef:
            if len(pid) != 5 or not isinstance(pid[1], StorageType) or not isinstance(pid[2], str):
                raise CorruptCheckpointError(f"bad storage reference in the pickle: {str(pid)[:80]}", CORRUPT_HINT)
            _, storage_type, key, _location, numel = pid
            if key in storages:
                return storages[key]
            name = f"{prefix}data/{key}"
            itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
            if not isinstance(numel, int) or numel < 0:
                raise CorruptCheckpointError(f"{path}: storage {name} declares {numel!r} elements", CORRUPT_HINT)
            try:
                raw = _read_record(archive, raw_file, name, numel * itemsize)
            except KeyError:
                raise CorruptCheckpointError(f"{path}: storage {name} is missing from the archive",
                                             CORRUPT_HINT) from None
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
                raise CorruptCheckpointError(f"{path}: storage {name} is damaged ({exc})", CORRUPT_HINT) from None
            if raw.numel() < numel * itemsize:
                raise CorruptCheckpointError(f"{path}: storage {name} has {raw.numel()} bytes, expected "
                                             f"{numel} x {itemsize}", CORRUPT_HINT)
            storages[key] = _StorageRef(raw.untyped_storage(), storage_type.dtype)
            return storages[key]

        try:
            data = _inflate(archive, pickles[0], MAX_PICKLE_BYTES)
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
            raise CorruptCheckpointError(f"{path}: data.pkl is damaged ({exc})", CORRUPT_HINT) from None
        return restricted_loads(data, load_storage)


def _inflate(archive: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """A record's bytes, refusing to inflate more than `max_bytes` (a crafted record could claim
    little and inflate to gigabytes: the declared size in the zip directory is not trusted)."""
    info = archive.getinfo(name)
    if info.file_size > max_bytes:
        raise CorruptCheckpointError(f"record {name} declares {info.file_size} bytes, more than the {max_bytes} "
                                     "its contents need", CORRUPT_HINT)
    with archive.open(info) as f:
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise CorruptCheckpointError(f"record {name} inflates beyond the {max_bytes} bytes its contents need",
                                     CORRUPT_HINT)
    return data


def _read_record(archive: zipfile.ZipFile, raw_file: BinaryIO, name: str, max_bytes: int) -> torch.Tensor:
    """One archive record as a uint8 tensor, CRC-checked.

    torch writes records uncompressed (ZIP_STORED); those are read straight into the tensor's memory
    (no intermediate bytes object, which would double the peak for a 4.6 GB checkpoint).
    Compressed records are inflated up to `max_bytes` (the storage's declared byte size) and no further.
    """
    info = archive.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        data = _inflate(archive, name, max_bytes)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
    raw_file.seek(info.header_offset)
    header = raw_file.read(30)
    if len(header) != 30 or header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"bad local header for {name}")
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    raw_file.seek(info.header_offset + 30 + name_len + extra_len)
    out = torch.empty(info.file_size, dtype=torch.uint8)
    view = memoryview(out.numpy())
    got = raw_file.readinto(view) if info.file_size else 0
    if got != info.file_size:
        raise EOFError(f"{name}: {got} of {info.file_size} bytes")
    if zlib.crc32(view) != info.CRC:
        raise zipfile.BadZipFile(f"bad CRC-32 for {name}")
    return out


def _legacy_load(path: Path) -> Any:
    """The pre-1.6 stream: magic, protocol, sys_info, main pickle, storage key list, then raw storages."""
    file_size = path.stat().st_size
    with open(path, "rb") as f:
        magic = restricted_loads(f)
        if magic != _LEGACY_MAGIC:
            raise UnsupportedFormatError(f"{path} is a pickle file but not a PyTorch checkpoint",
                                         "pass the official human3r.pth")
        if restricted_loads(f) != _LEGACY_PROTOCOL:
            raise UnsupportedFormatError(f"{path}: unsupported legacy PyTorch protocol", "re-save with torch.save")
        sys_info = restricted_loads(f)
        if not isinstance(sys_info, dict) or not sys_info.get("little_endian", True):
            raise UnsupportedFormatError(f"{path} was saved on a big-endian machine", "re-save it on x86/ARM")
        storages: dict[str, _StorageRef] = {}

        def load_storage(pid: tuple) -> Any:
            if len(pid) != 6 or not isinstance(pid[1], StorageType):
                raise CorruptCheckpointError(f"bad storage reference in the pickle: {str(pid)[:80]}", CORRUPT_HINT)
            _, storage_type, key, _location, numel, view = pid
            if view is not None:
                raise UnsupportedFormatError(f"{path} uses storage views (torch < 0.4)", "re-save with a newer torch")
            if key not in storages:
                itemsize = torch.empty((), dtype=storage_type.dtype).element_size()
                if not isinstance(numel, int) or not 0 <= numel * itemsize <= file_size:
                    raise CorruptCheckpointError(f"{path}: storage {key!r} claims {numel} elements, more than the "
                                                 "file holds", CORRUPT_HINT)
                storages[key] = _StorageRef(torch.UntypedStorage(numel * itemsize), storage_type.dtype)
            return storages[key]

        result = restricted_loads(f, load_storage)
        keys = restricted_loads(f)
        if not isinstance(keys, list):
            raise CorruptCheckpointError(f"{path}: bad storage key list", CORRUPT_HINT)
        for key in keys:
            if key not in storages:
                raise CorruptCheckpointError(f"{path}: storage {key!r} listed but never used", CORRUPT_HINT)
            ref = storages[key]
            header = f.read(8)
            if len(header) != 8:
                raise CorruptCheckpointError(f"{path} is truncated (storage {key})", CORRUPT_HINT)
            (numel,) = struct.unpack("<q", header)
            nbytes = numel * torch.empty((), dtype=ref.dtype).element_size()
            if nbytes != ref.untyped.nbytes():
                raise CorruptCheckpointError(f"{path}: storage {key} size mismatch", CORRUPT_HINT)
            raw = bytearray(f.read(nbytes))
            if len(raw) != nbytes:
                raise CorruptCheckpointError(f"{path} is truncated (storage {key})", CORRUPT_HINT)
            if nbytes:
                view = torch.empty((0,), dtype=torch.uint8).set_(ref.untyped)
                view.copy_(torch.frombuffer(raw, dtype=torch.uint8))
        return result


def load_torch_raw(path: str | Path) -> tuple[Any, str]:
    """Read a ``torch.save`` file with the restricted unpickler; returns ``(object, 'torch-zip' | 'torch-legacy')``.

    Tensors are CPU tensors with their saved dtype (sharing storage where the file shares it); allowed
    data classes are still `Inert` stand-ins (see `plain.to_plain`).
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(b"PK"):
        return _zip_load(path), "torch-zip"
    if head[:1] == b"\x80":
        return _legacy_load(path), "torch-legacy"
    if not head:
        raise CorruptCheckpointError(f"{path} is empty", CORRUPT_HINT)
    raise CorruptCheckpointError(f"{path} is neither a PyTorch zip archive nor a legacy PyTorch file "
                                 f"(starts with {head!r})", CORRUPT_HINT)
