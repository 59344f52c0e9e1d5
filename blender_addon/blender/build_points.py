"""Point-cloud objects from `core.pointcloud.CloudData`: one mesh of loose vertices + a Geometry Nodes display.

Works the same on 4.2 and 5.x (PointCloud has no resize() on 5.0.1, so no direct POINTCLOUD data):
positions (the `position` attribute, much faster than `vertices.foreach_set('co')` at 10 M points) and a
FLOAT_COLOR point attribute `Col` (scene-linear) are written with `foreach_set`; a Geometry Nodes
modifier turns them into points (Mesh to Points, radius exposed as the modifier's "Radius" input)
with a material reading `Col`. Per-frame clouds carry an INT point attribute `frame`, and their node
group first deletes every point whose frame differs from the scene's current frame.
"""
from __future__ import annotations

import bpy
import numpy as np

from . import compat

COLOR_ATTRIBUTE = "Col"
FRAME_ATTRIBUTE = "frame"
SCENE_GROUP = "Human3R Points"
FRAME_GROUP = "Human3R Frame Points"
MATERIAL = "Human3R Points"


def create_cloud(name: str, cloud, collection: bpy.types.Collection, radius: float) -> bpy.types.Object:
    """Mesh object holding `cloud` (co, color, optional frame) displayed as points of `radius` metres."""
    n = cloud.count
    me = bpy.data.meshes.new(name)
    me.vertices.add(n)
    me.attributes["position"].data.foreach_set("vector", np.ascontiguousarray(cloud.co, dtype=np.float32))
    col = me.color_attributes.new(COLOR_ATTRIBUTE, "FLOAT_COLOR", "POINT")
    col.data.foreach_set("color", np.ascontiguousarray(cloud.color, dtype=np.float32))
    per_frame = cloud.frame is not None
    if per_frame:
        attr = me.attributes.new(FRAME_ATTRIBUTE, "INT", "POINT")
        attr.data.foreach_set("value", np.ascontiguousarray(cloud.frame, dtype=np.int32))
    me.update()
    ob = bpy.data.objects.new(name, me)
    collection.objects.link(ob)
    group = _node_group(per_frame)
    mod = ob.modifiers.new("Points", "NODES")
    mod.node_group = group
    mod[group.interface.items_tree["Radius"].identifier] = float(radius)
    return ob


def _node_group(per_frame: bool) -> bpy.types.NodeTree:
    """The shared display node group (created once per file)."""
    name = FRAME_GROUP if per_frame else SCENE_GROUP
    group = bpy.data.node_groups.get(name)
    if group is not None and group.bl_idname == "GeometryNodeTree":
        return group
    group = bpy.data.node_groups.new(name, "GeometryNodeTree")
    iface = group.interface
    iface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
    radius = iface.new_socket(name="Radius", in_out="INPUT", socket_type="NodeSocketFloat")
    radius.default_value, radius.min_value = 0.01, 0.0
    iface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    nodes, links = group.nodes, group.links
    gin, gout = nodes.new("NodeGroupInput"), nodes.new("NodeGroupOutput")
    to_points = nodes.new("GeometryNodeMeshToPoints")
    to_points.mode = "VERTICES"
    set_mat = nodes.new("GeometryNodeSetMaterial")
    set_mat.inputs["Material"].default_value = _material()
    geometry = gin.outputs["Geometry"]
    if per_frame:  # delete points whose `frame` differs from the current scene frame
        time = nodes.new("GeometryNodeInputSceneTime")
        to_int = nodes.new("FunctionNodeFloatToInt")
        to_int.rounding_mode = "ROUND"
        attr = nodes.new("GeometryNodeInputNamedAttribute")
        attr.data_type = "INT"
        attr.inputs["Name"].default_value = FRAME_ATTRIBUTE
        compare = nodes.new("FunctionNodeCompare")
        compare.data_type, compare.operation = "INT", "NOT_EQUAL"
        delete = nodes.new("GeometryNodeDeleteGeometry")
        delete.domain = "POINT"
        links.new(time.outputs["Frame"], to_int.inputs["Float"])
        links.new(attr.outputs["Attribute"], _socket(compare.inputs, "A_INT"))
        links.new(to_int.outputs["Integer"], _socket(compare.inputs, "B_INT"))
        links.new(geometry, delete.inputs["Geometry"])
        links.new(compare.outputs["Result"], delete.inputs["Selection"])
        geometry = delete.outputs["Geometry"]
    links.new(geometry, to_points.inputs["Mesh"])
    links.new(gin.outputs["Radius"], to_points.inputs["Radius"])
    links.new(to_points.outputs["Points"], set_mat.inputs["Geometry"])
    links.new(set_mat.outputs["Geometry"], gout.inputs["Geometry"])
    for i, node in enumerate(nodes):
        node.location = (200 * i, 0)
    return group


def _socket(sockets, identifier: str):
    for s in sockets:
        if s.identifier == identifier:
            return s
    raise KeyError(identifier)


def _material() -> bpy.types.Material:
    """Material colouring points by the `Col` attribute (created once per file)."""
    mat = bpy.data.materials.get(MATERIAL)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(MATERIAL)
    compat.enable_material_nodes(mat)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = next((n for n in nodes if n.bl_idname == "ShaderNodeBsdfPrincipled"), None)
    if bsdf is None:
        bsdf = nodes.new("ShaderNodeBsdfPrincipled")
        out = next((n for n in nodes if n.bl_idname == "ShaderNodeOutputMaterial"), None)
        out = out or nodes.new("ShaderNodeOutputMaterial")
        links.new(bsdf.outputs["BSDF"], out.inputs["Surface"])
    attr = nodes.new("ShaderNodeAttribute")
    attr.attribute_name = COLOR_ATTRIBUTE
    links.new(attr.outputs["Color"], bsdf.inputs["Base Color"])
    return mat
