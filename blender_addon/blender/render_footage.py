"""F12 renders that show the footage: the camera's background video composited behind the render.

A camera background is a viewport overlay only; a render shows the world colour behind the people.
With this option the render film is transparent and the scene's compositor lays the render over the
same movie clip (frame-matched by the clip's own start frame, scaled to the render size):
    Movie Clip -> Scale (render size) -> Alpha Over background; Render Layers -> Alpha Over foreground
The node tree is the add-on's own ("Human3R Footage"); building it again replaces it. Version
differences of the compositor API live in `compat.py`.
"""
from __future__ import annotations

import bpy

from . import compat

TREE_NAME = "Human3R Footage"
NODE_PREFIX = "Human3R "


def footage_clip(camera: bpy.types.Object) -> bpy.types.MovieClip | None:
    """The movie clip shown behind `camera` (its first background with a clip), or None."""
    for bg in getattr(camera.data, "background_images", ()):
        if bg.source == "MOVIE_CLIP" and bg.clip is not None:
            return bg.clip
    return None


def show_footage_in_renders(scene: bpy.types.Scene, camera: bpy.types.Object) -> bool:
    """Composite `camera`'s background clip behind `scene`'s renders; False (nothing changed) when the
    camera shows no clip (a missing video is reported where the camera is built).

    Sets `scene.render.film_transparent` (the footage shows where nothing was rendered), the Standard
    view transform (AgX/Filmic would grade the footage too: Standard shows it as recorded) and replaces
    the scene's compositor with the add-on's node tree.
    """
    clip = footage_clip(camera)
    if clip is None:
        return False
    tree = compat.new_compositor_tree(scene, TREE_NAME)
    render_layers = tree.nodes.new("CompositorNodeRLayers")
    render_layers.scene = scene
    movie = tree.nodes.new("CompositorNodeMovieClip")
    movie.clip = clip
    scale = tree.nodes.new("CompositorNodeScale")
    compat.scale_to_render_size(scale)
    over = tree.nodes.new("CompositorNodeAlphaOver")
    background, foreground = compat.alpha_over_inputs(over)
    output = compat.compositor_output(tree)
    for x, node in enumerate((movie, scale, over)):
        node.name = node.label = f"{NODE_PREFIX}{node.bl_label}"
        node.location = (200 * x, 0)
    render_layers.location, output.node.location = (200, 250), (600, 0)
    tree.links.new(movie.outputs["Image"], scale.inputs["Image"])
    tree.links.new(scale.outputs["Image"], background)
    tree.links.new(render_layers.outputs["Image"], foreground)
    tree.links.new(over.outputs["Image"], output)
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    return True


def footage_in_renders(scene: bpy.types.Scene) -> bool:
    """Whether `scene` renders through the add-on's footage compositing."""
    tree = compat.compositor_tree_of(scene)
    return tree is not None and any(n.bl_idname == "CompositorNodeMovieClip" and n.name.startswith(NODE_PREFIX)
                                    for n in tree.nodes)
