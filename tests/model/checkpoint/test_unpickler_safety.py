"""The .pth reader must refuse pickles that would run code, and must not run them while refusing."""
from __future__ import annotations

import os
import pickle
import subprocess
import zipfile
from pathlib import Path

import pytest
import torch

from backend.model.checkpoint import UnsafeCheckpointError, read_checkpoint
from backend.model.checkpoint.unpickler import resolve_global


def write_torch_zip(path: Path, payload: bytes) -> Path:
    """A real torch zip layout (``archive/data.pkl`` + metadata records) around a hand-made pickle."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/.data/serialization_id", "0" * 40)
    return path


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class RunsPopen:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return subprocess.Popen, (["sh", "-c", self.command],)


def opcode_payloads(sentinel: Path) -> dict[str, tuple[bytes, str]]:
    """Hand-written pickles (protocol 0/2 opcodes): payload and the global the reader must name."""
    touch = f"touch {sentinel}"
    write = f"open({str(sentinel)!r}, 'w').write('pwned')"
    return {
        "os.system": (f"cos\nsystem\n(V{touch}\ntR.".encode(), "os.system"),
        "posix.system": (f"cposix\nsystem\n(V{touch}\ntR.".encode(), "posix.system"),
        "builtins.exec": (f"cbuiltins\nexec\n(V{write}\ntR.".encode(), "builtins.exec"),
        "__builtin__.eval (py2 name)": (f"c__builtin__\neval\n(V{write}\ntR.".encode(), "builtins.eval"),
        "getattr chain": (b"cbuiltins\ngetattr\n(cbuiltins\nobject\nV__subclasses__\ntR.", "builtins.getattr"),
        # valid-looking checkpoint dict whose 'args' hides the call behind the tensors' key
        # a valid-looking {'model': {}, 'args': subprocess.check_call([...])}
        "nested in args": (b"\x80\x02}q\x00(X\x05\x00\x00\x00modelq\x01}q\x02X\x04\x00\x00\x00argsq\x03"
                           + f"csubprocess\ncheck_call\n(](V{touch}\netR".encode() + b"u.", "subprocess.check_call"),
        "torch.load inside": (b"ctorch\nload\n(Vx\ntR.", "torch.load"),
        "class instance (INST)": (f"(V{touch}\nios\nsystem\n.".encode(), "os.system"),
    }


@pytest.mark.parametrize("case", list(opcode_payloads(Path("x"))))
def test_hand_written_malicious_pickles_are_refused_and_not_run(tmp_path, case):
    sentinel = tmp_path / "sentinel"
    payload, global_name = opcode_payloads(sentinel)[case]
    path = write_torch_zip(tmp_path / "evil.pth", payload)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    assert info.value.global_name == global_name
    assert global_name in str(info.value)
    assert not sentinel.exists(), "the pickle's code ran"


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("evil_class", [RunsShell, RunsPopen])
def test_torch_saved_reduce_payload_is_refused(tmp_path, protocol, evil_class):
    """torch.save itself writes the malicious object (STACK_GLOBAL for protocol >= 4), beside real tensors."""
    sentinel = tmp_path / "sentinel"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(3)}, "args": evil_class(f"touch {sentinel}")}, path,
               pickle_protocol=protocol)
    with pytest.raises(UnsafeCheckpointError) as info:
        read_checkpoint(path)
    assert info.value.global_name in {"posix.system", "os.system", "subprocess.Popen", "nt.system"}
    assert not sentinel.exists()


def test_legacy_format_payload_is_refused(tmp_path):
    sentinel = tmp_path / "sentinel"
    path = tmp_path / "evil_legacy.pth"
    torch.save({"model": {"w": torch.zeros(3)}, "args": RunsShell(f"touch {sentinel}")}, path,
               _use_new_zipfile_serialization=False)
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint(path)
    assert not sentinel.exists()


def test_omegaconf_names_never_import_omegaconf(tmp_path):
    """OmegaConf globals map to inert stand-ins: the real package is neither needed nor imported."""
    import sys

    stand_in = resolve_global("omegaconf.dictconfig", "DictConfig")
    assert stand_in.__module__ == "backend.model.checkpoint.unpickler"
    assert "omegaconf" not in sys.modules


@pytest.mark.parametrize("name", [("builtins", "__import__"), ("typing", "__getattr__"), ("torch", "_C"),
                                  ("numpy", "load"), ("torch.serialization", "load"), ("copyreg", "_reconstructor")])
def test_allow_list_is_narrow(name):
    with pytest.raises(UnsafeCheckpointError):
        resolve_global(*name)


def test_rebuild_bounds_are_checked(tmp_path):
    """A tensor claiming more elements than its storage holds is a corrupt file, not a memory read."""
    from backend.model.checkpoint import CorruptCheckpointError

    path = tmp_path / "ok.pth"
    torch.save({"model": {"w": torch.zeros(4)}}, path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        records = {n: archive.read(n) for n in names}
    pkl_name = next(n for n in names if n.endswith("data.pkl"))
    pkl = records[pkl_name]
    # the size tuple (4,) is pickled as BININT1 4 + TUPLE1 ('K\x04\x85'); claim 400 elements instead
    assert pkl.count(b"K\x04\x85") == 1
    records[pkl_name] = pkl.replace(b"K\x04\x85", b"M\x90\x01\x85")
    bad = tmp_path / "bad.pth"
    with zipfile.ZipFile(bad, "w") as archive:
        for name, data in records.items():
            archive.writestr(name, data)
    with pytest.raises(CorruptCheckpointError, match="overruns"):
        from backend.model.checkpoint.plain import load_torch_file
        load_torch_file(bad)


def test_plain_pickle_module_would_have_run_it(tmp_path):
    """Control: the payload really runs under the ordinary unpickler, so the refusal tests mean something."""
    sentinel = tmp_path / "sentinel"
    pickle.loads(opcode_payloads(sentinel)["os.system"][0])
    assert sentinel.exists()


def test_mutated_pickles_only_raise_checkpoint_errors():
    """Random byte damage to a real checkpoint pickle: every outcome is a result or a CheckpointError
    (no stray exception types, no giant allocations from forged memo indices or lengths)."""
    import argparse
    import collections
    import io
    import random

    from backend.model.checkpoint import CheckpointError
    from backend.model.checkpoint.unpickler import _StorageRef, restricted_loads
    from backend.model.checkpoint.plain import to_plain

    buffer = io.BytesIO()
    torch.save({"model": collections.OrderedDict(a=torch.randn(3, 4), b=torch.arange(5)),
                "args": argparse.Namespace(model="x", sizes=[1, 2, (3, 4)], opts={"k": 1.5})}, buffer)
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as archive:
        original = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))

    def load_storage(_pid):
        return _StorageRef(torch.UntypedStorage(64), torch.float32)

    rng = random.Random(1234)
    loaded = refused = 0
    for _ in range(2000):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        try:
            to_plain(restricted_loads(bytes(data), load_storage))
            loaded += 1
        except CheckpointError:
            refused += 1
    # both outcomes occur: the damage reaches past the first opcode, and harmless damage still loads
    assert loaded > 0 and refused > 0, (loaded, refused)


def test_forged_memo_index_is_refused_before_allocation():
    from backend.model.checkpoint import CorruptCheckpointError
    from backend.model.checkpoint.unpickler import restricted_loads

    forged = b"\x80\x02}r\xff\xff\xff\x7f."  # EMPTY_DICT, LONG_BINPUT 2**31-1, STOP
    with pytest.raises(CorruptCheckpointError, match="memo index"):
        restricted_loads(forged)
