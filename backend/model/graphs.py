"""Compiled stages of `Human3R.step`: fewer launches, and CUDA graphs on a GPU.

Eager, a step dispatches ~3,700 operations, so on a GPU the host's launch time (not the math) sets
the frame rate. The fixed-shape stages (`encode`: both image encoders; `detect`: scores and mask)
and the decoder, whose shapes depend only on the person count, are compiled with `torch.compile`:
on CUDA in mode "reduce-overhead" (the compiled graph is captured as a CUDA graph and replayed),
elsewhere in the default mode. Shapes are static: a new person count compiles (and captures) its own
decoder lazily, the first time it is seen, up to `MAX_GRAPHS_PER_STAGE` of them; past that dynamo
runs the stage eagerly. The recurrent state flows between steps, so on CUDA every compiled output
is cloned out of the graph's memory pool (a replay overwrites it).

`--no-graphs` (Engine `graphs=False`) keeps every stage eager.
"""
from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn

STAGES = ("encode", "detect", "decode")
MAX_GRAPHS_PER_STAGE = 16  # person counts (and the overlap view's) a decoder is compiled for


def compile_mode(device: torch.device) -> str:
    """'reduce-overhead' (CUDA graphs) on CUDA, 'default' elsewhere."""
    return "reduce-overhead" if torch.device(device).type == "cuda" else "default"


def compile_options(mode: str) -> dict:
    """Inductor options of `mode`, plus `emulate_precision_casts`: without it inductor drops the
    rounding of a value cast down and back up (the encoder's fp16 q/k in parity mode, bf16
    activations in fast mode), so compiled stages would not compute what eager ones do (measured on
    one parity-mode encoder block: 1.0e-5 relative error without, 6.8e-7 with)."""
    return {**torch._inductor.list_mode_options(mode), "emulate_precision_casts": True}


def use_graphs(model: nn.Module, mode: str | None = None, stages: tuple[str, ...] = STAGES) -> nn.Module:
    """Compile `model`'s `stages` (default: all) in place (idempotent); returns the model. Compiling
    happens lazily, on the first step (and per new person count for the decoder)."""
    if getattr(model, "graphs", False):
        return model
    device = next(model.parameters()).device
    mode = mode or compile_mode(device)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, MAX_GRAPHS_PER_STAGE)
    on_cuda = device.type == "cuda"
    for name in stages:
        stage = getattr(model, name)  # the bound method
        compiled = torch.compile(stage, dynamic=False, fullgraph=False, options=compile_options(mode))
        setattr(model, name, _graph_safe(compiled, mark_step=on_cuda and name == stages[0], clone=on_cuda))
    model.graphs = True
    return model


def without_graphs(model: nn.Module) -> nn.Module:
    """Undo `use_graphs` on `model` (e.g. a deep copy, whose compiled stages still call the original)."""
    for name in STAGES:
        model.__dict__.pop(name, None)
    model.__dict__.pop("graphs", None)
    return model


def _graph_safe(fn, mark_step: bool, clone: bool):
    @functools.wraps(fn)
    def run(*args, **kwargs):
        if mark_step:  # a new step: the previous step's graph outputs may be overwritten now
            torch.compiler.cudagraph_mark_step_begin()
        out = fn(*args, **kwargs)
        return _clone_tensors(out) if clone else out
    return run


def _clone_tensors(obj):
    """`obj` with every tensor in it (tuples, lists, dicts, dataclasses) cloned."""
    if isinstance(obj, torch.Tensor):
        return obj.clone()
    if isinstance(obj, (tuple, list)):
        return type(obj)(_clone_tensors(v) for v in obj)
    if isinstance(obj, dict):
        return {k: _clone_tensors(v) for k, v in obj.items()}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: _clone_tensors(getattr(obj, f.name))
                                           for f in dataclasses.fields(obj) if f.init})
    return obj
