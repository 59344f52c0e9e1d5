"""Version-dependent bpy animation API in one place: F-curves on Blender 4.2 LTS through 5.x.

- 4.2-4.3: legacy actions, `action.fcurves.new(data_path, index=, action_group=)`.
- 4.4+: slotted actions. The action gets a slot for the ID (`action.slots.new`), the ID's
  `animation_data.action_slot` is set explicitly (assignment alone does not pick a slot whose name
  differs), and F-curves live in the slot's channelbag of the action's single layer/strip
  (`bpy_extras.anim_utils.action_ensure_channelbag_for_slot` where available). 5.0 removed
  `Action.fcurves`, so nothing here touches it on 4.4+.

Keys are written in bulk: `keyframe_points.add(n)` + `foreach_set('co', float32 [f0, v0, f1, v1, ...])`
(and the handles) + `foreach_set('interpolation', ...)`, never `keyframe_insert`. Appending a small batch
to a long curve sets only the new points one by one (bounded work per call for live streaming); a batch
at least a quarter of the curve's size rewrites the curve in bulk, which keeps the total cost linear.
"""
from __future__ import annotations

import bpy
import numpy as np

HAS_SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)
_INTERPOLATION = {item.identifier: item.value
                  for item in bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items}
_BULK_FRACTION = 4  # rewrite the whole curve when new keys >= existing / _BULK_FRACTION


class AnimationTarget:
    """The F-curves of one ID's action (slot + channelbag on 4.4+, legacy action before)."""

    def __init__(self, id_data: bpy.types.ID, action_name: str):
        self.id_data = id_data
        anim = id_data.animation_data or id_data.animation_data_create()
        action = anim.action
        if action is None:
            action = bpy.data.actions.new(action_name)
            if HAS_SLOTTED_ACTIONS:
                slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
                anim.action = action
                anim.action_slot = slot
            else:
                anim.action = action
        self.action = action
        if HAS_SLOTTED_ACTIONS:
            slot = anim.action_slot
            if slot is None:
                slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)
                anim.action_slot = slot
            self._fcurves = _channelbag(action, slot)
        else:
            self._fcurves = action  # legacy: action.fcurves / action.groups
        self._cache: dict[tuple[str, int], bpy.types.FCurve] = {}

    def fcurve(self, data_path: str, index: int, group: str | None = None) -> bpy.types.FCurve:
        """Find or create the F-curve (data_path, index), in channel group `group` when created."""
        key = (data_path, index)
        fc = self._cache.get(key)
        if fc is None:
            fc = self._fcurves.fcurves.find(data_path, index=index)
            if fc is None:
                fc = self._new_fcurve(data_path, index, group)
            self._cache[key] = fc
        return fc

    def _new_fcurve(self, data_path: str, index: int, group: str | None) -> bpy.types.FCurve:
        if not HAS_SLOTTED_ACTIONS:
            if group:
                return self._fcurves.fcurves.new(data_path, index=index, action_group=group)
            return self._fcurves.fcurves.new(data_path, index=index)
        fc = self._fcurves.fcurves.new(data_path, index=index)
        if group:
            groups = self._fcurves.groups
            grp = groups.get(group) or groups.new(group)
            fc.group = grp
        return fc

    def remove(self, data_path: str, index: int) -> None:
        """Delete an F-curve if it exists (to replace a curve's keys entirely)."""
        fc = self._cache.pop((data_path, index), None) or self._fcurves.fcurves.find(data_path, index=index)
        if fc is not None:
            self._fcurves.fcurves.remove(fc)

    def apply(self, keys) -> int:
        """Append a list of `core.keyframes.FCurveKeys`; returns the number of keys written."""
        total = 0
        for k in keys:
            append_keys(self.fcurve(k.data_path, k.index, k.group), k.co, k.interpolation)
            total += k.count
        return total


def fcurves_of(id_data: bpy.types.ID) -> list[bpy.types.FCurve]:
    """The F-curves animating `id_data` (its action's assigned slot on 4.4+), [] when not animated."""
    anim = id_data.animation_data
    if anim is None or anim.action is None:
        return []
    if not HAS_SLOTTED_ACTIONS:
        return list(anim.action.fcurves)
    if anim.action_slot is None:
        return []
    for layer in anim.action.layers:
        for strip in layer.strips:
            bag = strip.channelbag(anim.action_slot)
            if bag is not None:
                return list(bag.fcurves)
    return []


def action_fcurves(action: bpy.types.Action) -> list[bpy.types.FCurve]:
    """Every F-curve of an action, whatever ID or slot it animates (all channelbags on 4.4+)."""
    if not HAS_SLOTTED_ACTIONS:
        return list(action.fcurves)
    return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
            for fc in bag.fcurves]


def find_fcurve(id_data: bpy.types.ID, data_path: str, index: int = 0) -> bpy.types.FCurve | None:
    """The F-curve (data_path, index) animating `id_data`, or None."""
    for fc in fcurves_of(id_data):
        if fc.data_path == data_path and fc.array_index == index:
            return fc
    return None


def _channelbag(action: bpy.types.Action, slot):
    try:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot
    except ImportError:  # 4.4/4.5 may only have the getter
        action_ensure_channelbag_for_slot = None
    if action_ensure_channelbag_for_slot is not None:
        return action_ensure_channelbag_for_slot(action, slot)
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def append_keys(fcurve: bpy.types.FCurve, co: np.ndarray, interpolation: str = "LINEAR") -> None:
    """Append keys co = float32 [f0, v0, f1, v1, ...] (frames after the curve's last key) to `fcurve`.

    Handles are placed on their keys, which is exact for LINEAR/CONSTANT keys, so the curve needs no
    `fcurve.update()` (a sort + handle pass over the whole curve: ~0.2 ms per 3,000 keys, the dominant
    cost of small live batches). Frames must increase along `co` and start after the curve's last key.
    """
    co = np.ascontiguousarray(co, dtype=np.float32)
    n_new = co.size // 2
    if n_new == 0:
        return
    points = fcurve.keyframe_points
    n_old = len(points)
    interp = _INTERPOLATION[interpolation]
    if n_old == 0 or n_new * _BULK_FRACTION >= n_old:
        if n_old:
            old = np.empty(2 * n_old, dtype=np.float32)
            points.foreach_get("co", old)
            old_interp = np.empty(n_old, dtype=np.int32)
            points.foreach_get("interpolation", old_interp)
            co = np.concatenate([old, co])
            interps = np.concatenate([old_interp, np.full(n_new, interp, dtype=np.int32)])
        else:
            interps = np.full(n_new, interp, dtype=np.int32)
        points.add(n_new)
        points.foreach_set("co", co)
        points.foreach_set("handle_left", co)
        points.foreach_set("handle_right", co)
        points.foreach_set("interpolation", interps)
    else:
        points.add(n_new)
        for i in range(n_new):
            p = points[n_old + i]
            key = (co[2 * i], co[2 * i + 1])
            p.co = p.handle_left = p.handle_right = key
            p.interpolation = interpolation


def set_smooth(mesh: bpy.types.Mesh) -> None:
    """Smooth-shade all faces (Mesh.shade_smooth on 4.1+, the polygon flag before)."""
    if hasattr(mesh, "shade_smooth"):
        mesh.shade_smooth()
    else:  # pragma: no cover - Blender < 4.1
        mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))


def enable_material_nodes(material: bpy.types.Material) -> None:
    """Materials always use nodes on 5.x; older versions need the flag."""
    if bpy.app.version < (5, 0, 0):
        material.use_nodes = True


# --- compositor: 5.0 made the scene's compositor a node group (`scene.compositing_node_group`, output through a
# Group Output node) and renamed Alpha Over's inputs; 4.2-4.5 use `scene.node_tree` and a Composite node.


def new_compositor_tree(scene: bpy.types.Scene, name: str) -> bpy.types.NodeTree:
    """An empty compositor node tree that `scene` renders through (created or cleared here)."""
    if hasattr(scene, "compositing_node_group"):
        tree = bpy.data.node_groups.get(name)
        if tree is None or tree.bl_idname != "CompositorNodeTree":
            tree = bpy.data.node_groups.new(name, "CompositorNodeTree")
        tree.nodes.clear()
        tree.interface.clear()
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    tree = scene.node_tree
    tree.nodes.clear()
    return tree


def compositor_tree_of(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    """The compositor node tree `scene` renders through, or None when compositing is off."""
    if hasattr(scene, "compositing_node_group"):
        return scene.compositing_node_group
    return scene.node_tree if scene.use_nodes else None


def compositor_output(tree: bpy.types.NodeTree) -> bpy.types.NodeSocket:
    """The input socket whose image the render result becomes (a new output node)."""
    if not hasattr(bpy.types, "CompositorNodeComposite"):
        tree.interface.new_socket(name="Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        return tree.nodes.new("NodeGroupOutput").inputs["Image"]
    return tree.nodes.new("CompositorNodeComposite").inputs["Image"]


def alpha_over_inputs(node: bpy.types.Node) -> tuple[bpy.types.NodeSocket, bpy.types.NodeSocket]:
    """(background, foreground) inputs of an Alpha Over node."""
    if "Background" in node.inputs:
        return node.inputs["Background"], node.inputs["Foreground"]
    return node.inputs[1], node.inputs[2]


def scale_to_render_size(node: bpy.types.Node) -> None:
    """Make a Scale node fit its image into the render size (the footage fills the frame)."""
    if "Type" in node.inputs:
        node.inputs["Type"].default_value = "Render Size"
        node.inputs["Frame Type"].default_value = "Fit"
    else:
        node.space = "RENDER_SIZE"
        node.frame_method = "FIT"
