"""Imported once, and only, by the process that forks the decoding processes (`ready_frames._context`).

It loads everything a decoding process needs, runs the preprocessing once (torch and Pillow
initialise lazily), then freezes the garbage collector: objects created so far are never scanned
again, so forked children do not touch (and copy) the parent's pages on their first collection.
Together this takes a new decoding process from ~140 ms to its first frame down to the cost of
decoding it.
"""
from __future__ import annotations

import gc
import os

# before torch loads OpenMP: idle worker threads sleep instead of spinning on the model's core
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from backend.video.decoding_process import run_worker  # noqa: F401  (loaded for the children)
from backend.video.preprocess import PrepareSettings

torch.set_num_threads(1)  # no OpenMP thread team here: forked children must build their own
PrepareSettings(size=64, mhmr_res=56).apply(np.zeros((64, 96, 3), np.uint8))
gc.freeze()
