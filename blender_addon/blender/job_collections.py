"""The collection a new run of a job goes into: a new version, or in place of the earlier runs.

`claim(scene, base, mode)` is called once per import (from the scene builder's header step), before
anything is created, so every object of the run is named after the collection it returns.
"""
from __future__ import annotations

import bpy

from ..core.job_names import next_version_name, runs_of


def claim(base: str, mode: str) -> tuple[str, list[str]]:
    """(collection name for the new run, names of the earlier runs' collections it replaced).

    mode "VERSION": `base`, or `base vN` when runs of `base` exist (nothing is removed).
    mode "REPLACE": the earlier runs (`base`, `base vN`, `base.001`...) are removed with their data,
    and the new run is `base`.
    """
    names = [c.name for c in bpy.data.collections]
    if mode == "REPLACE":
        earlier = runs_of(base, names)
        remove_runs([bpy.data.collections[n] for n in earlier])
        return base, earlier
    return next_version_name(base, names), []


def remove_runs(collections: list[bpy.types.Collection]) -> int:
    """Remove `collections`, their child collections, their objects and the objects' data and
    animation (actions, shape keys' actions) in one `batch_remove`; returns how many IDs went.

    Data also used outside these collections (a material, a movie clip) is left alone: only objects'
    own data whose every user is removed here goes.
    """
    doomed_collections = set()
    for coll in collections:
        doomed_collections.add(coll)
        doomed_collections.update(coll.children_recursive)
    objects = {ob for coll in doomed_collections for ob in coll.objects}
    ids: set[bpy.types.ID] = set(doomed_collections) | objects
    for ob in objects:
        for owner in (ob, ob.data, getattr(ob.data, "shape_keys", None)):
            anim = getattr(owner, "animation_data", None)
            if anim is not None and anim.action is not None:
                ids.add(anim.action)
        data = ob.data
        if data is not None and all(user in objects for user in _object_users(data)):
            ids.add(data)
    bpy.data.batch_remove(ids)
    return len(ids)


def _object_users(data: bpy.types.ID) -> list[bpy.types.Object]:
    return [ob for ob in bpy.data.objects if ob.data == data]
