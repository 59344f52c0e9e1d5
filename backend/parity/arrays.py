"""The parity rule for one array, shared by every parity check.

Floating arrays: max|ours - ref| <= REL_TOL * max|ref| (a non-finite value of ours always fails).
Integer and boolean arrays (and any array compared with `exact=True`, such as track ids): identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REL_TOL = 5e-5


@dataclass(frozen=True)
class ArrayDiff:
    """How far one array is from the reference.

    max_abs: max|ours - ref|; max_ref: max|ref|; ratio: max_abs / max_ref (0 when both are 0, inf when
    only max_ref is; for exact comparisons 0 or inf); ok: within the rule; problem: why not ('' if ok).
    """

    max_abs: float
    max_ref: float
    ratio: float
    ok: bool
    problem: str = ""


def compare_arrays(ours: np.ndarray, ref: np.ndarray, rel_tol: float = REL_TOL,
                   exact: bool | None = None) -> ArrayDiff:
    """Compare `ours` with the reference array `ref` (any shapes; a shape difference fails).

    Args:
        exact: demand identical values; None = for integer and boolean `ref` only.
    """
    ours, ref = np.asarray(ours), np.asarray(ref)
    if ours.shape != ref.shape:
        return ArrayDiff(math.inf, math.nan, math.inf, False, f"shape {ours.shape} != reference {ref.shape}")
    if ref.size == 0:
        return ArrayDiff(0.0, 0.0, 0.0, True)
    if exact is None:
        exact = ref.dtype.kind in "biu"
    if exact:
        same = bool(np.array_equal(ours, ref))
        diff = 0.0 if same else float(np.max(np.abs(ours.astype(np.float64) - ref.astype(np.float64))))
        return ArrayDiff(diff, float(np.max(np.abs(ref.astype(np.float64)))), 0.0 if same else math.inf, same,
                         "" if same else f"{ours.tolist()} != reference {ref.tolist()}"[:300])
    max_abs = float(np.max(np.abs(ref.astype(np.float64) - ours.astype(np.float64))))
    max_ref = float(np.max(np.abs(ref)))
    ratio = max_abs / max_ref if max_ref > 0 else (0.0 if max_abs == 0 else math.inf)
    if not np.isfinite(ours).all():
        ratio = math.inf
    ok = ratio <= rel_tol
    problem = "" if ok else f"max|a-b| {max_abs:.3g} > {rel_tol} * max|ref| {max_ref:.3g}"
    return ArrayDiff(max_abs, max_ref, ratio, ok, problem)
