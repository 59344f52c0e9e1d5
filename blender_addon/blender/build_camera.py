"""Create the match-move camera from a `core.scene_plan.CameraPlan`, with the video as its background clip."""
from __future__ import annotations

import os

import bpy

from ..core.plan_camera import CAMERA_PROP

VIDEO_FRAME_START = "human3r_video_frame_start"  # camera property: Blender frame of the video's frame 0


def create_camera(plan, collection: bpy.types.Collection, scene: bpy.types.Scene, frame_start: int,
                  set_scene: bool = True) -> tuple[bpy.types.Object, list[str]]:
    """Camera object (quaternion rotation, keyed later) + data; returns (object, warnings).

    The render's pixel aspect and resolution are set from the plan when `set_scene`; a missing or
    unreadable video only produces a warning.
    """
    warnings: list[str] = []
    fit = plan.fit
    data = bpy.data.cameras.new(plan.name)
    data.sensor_fit = fit.sensor_fit
    data.sensor_width = fit.sensor_width
    data.sensor_height = fit.sensor_height
    data.lens_unit = "MILLIMETERS"
    data.lens = plan.lens
    data.shift_x = plan.shift_x
    data.shift_y = plan.shift_y
    data.clip_start = plan.clip_start
    data.clip_end = plan.clip_end
    cam = bpy.data.objects.new(plan.name, data)
    cam.rotation_mode = "QUATERNION"
    cam[CAMERA_PROP] = 1.0  # keyed in its action (see plan_camera)
    cam[VIDEO_FRAME_START] = int(frame_start)  # for "Locate Video…" when the video is missing
    collection.objects.link(cam)
    if set_scene:
        render = scene.render
        render.resolution_x, render.resolution_y = fit.width, fit.height
        render.resolution_percentage = 100
        render.pixel_aspect_x, render.pixel_aspect_y = fit.pixel_aspect_x, fit.pixel_aspect_y
        scene.camera = cam
    elif scene.camera is None:
        scene.camera = cam
    if plan.video_path:
        warning = attach_video(data, plan.video_path, frame_start, scene)
        if warning is None and (plan.video_rotation or plan.video_mirrored):
            warning = orientation_warning(data.background_images[-1].clip, plan.video_rotation, plan.video_mirrored,
                                          (fit.width, fit.height))
        if warning:
            warnings.append(warning)
    return cam, warnings


# Blender 5.0.1 shows videos with their rotation metadata applied, 4.2 LTS shows the stored picture
# (both checked with a 90-degree test clip); between them it is not known here.
ORIENTATION_APPLIED_FROM = (5, 0, 0)


def orientation_warning(clip: bpy.types.MovieClip, rotation: int, mirrored: bool,
                        upright_size: tuple[int, int]) -> str | None:
    """A warning when the background clip shows the video as stored while the results are upright.

    A quarter turn shows in the clip's size (upright or swapped); a half turn or a mirror does not,
    so there the Blender version decides.
    """
    width, height = upright_size
    if rotation in (90, 270) and width != height and not mirrored:
        applied = tuple(clip.size) == (width, height)
    else:
        applied = tuple(bpy.app.version) >= ORIENTATION_APPLIED_FROM
    if applied:
        return None
    turn = f"rotated {rotation}°" + (" and mirrored" if mirrored else "") if rotation else "mirrored"
    return (f"Blender {bpy.app.version_string} shows this video as stored ({turn}); the camera and the "
            "results are upright, so the camera background does not match them (Blender 5.0 shows it upright)")


def attach_video(data: bpy.types.Camera, path: str, frame_start: int, scene: bpy.types.Scene) -> str | None:
    """Show the video at `path` as the camera's background, video frame N at scene frame frame_start + N.

    Returns a warning instead of raising when the file is missing or Blender cannot open it.
    """
    resolved = bpy.path.abspath(path)
    if not os.path.isfile(resolved):
        return (f"video not found, no camera background: {path} (select the camera and use Locate Video… "
                f"in the Human3R panel)")
    try:
        clip = bpy.data.movieclips.load(resolved, check_existing=True)
    except RuntimeError as exc:
        return f"Blender cannot open the video ({exc}); no camera background"
    clip.frame_start = frame_start  # clip frame 1 (= video frame 0) plays at this scene frame
    clip.frame_offset = 0
    bg = data.background_images.new()
    bg.source = "MOVIE_CLIP"
    bg.clip = clip
    bg.use_camera_clip = False
    bg.frame_method = "STRETCH"  # the render has the video's size and pixel aspect
    bg.alpha = 1.0
    bg.clip_user.use_render_undistorted = False
    data.show_background_images = True
    if scene.active_clip is None:
        scene.active_clip = clip
    return None
