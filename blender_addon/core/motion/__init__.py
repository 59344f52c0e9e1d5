"""Motion clean-up (bpy-free, numpy only): gravity/floor alignment, smoothing, foot contacts and locking.

`refine_job` refines a whole job offline (files, `human3r refine`, the add-on's import); `LiveRefiner` /
`refine_stream` run the causal part as frames arrive; `CleanupOptions` is the one options definition.
"""
from .live import LiveRefiner, refine_stream
from .options import CleanupOptions
from .refine import Refined, refine_job

__all__ = ["CleanupOptions", "LiveRefiner", "Refined", "refine_job", "refine_stream"]
