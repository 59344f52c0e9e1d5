"""Per-scene settings of the Human3R panel (`scene.human3r`): the video, the job options, the import options.

They are saved with the .blend file. Runtime state (the running job, its progress) is not stored
here but in `live.py`'s session object, so a saved file never contains a stale "running" state.
`job_options()` turns the settings into the `options` map of a `submit` message; every job option
defaults to the engine's `JobOptions` default (what `human3r infer` uses), and a test checks it.
"""
import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from ..core.choices import POINT_MODE_CHOICES, PRECISION_CHOICES, RERUN_CHOICES


class HUMAN3R_PG_settings(bpy.types.PropertyGroup):
    """Scene-level settings shown in the 3D View sidebar's Human3R tab."""

    video_path: StringProperty(
        name="Video", subtype="FILE_PATH", default="",
        description="Video to process (a path the Human3R server can read; '//' means relative to the .blend)")

    # --- frame selection (source frame indices, 0-based) -------------------------------------------
    frame_start: IntProperty(name="Start", default=0, min=0, description="First source frame to process")
    frame_end: IntProperty(name="End", default=0, min=0,
                           description="Source frame to stop before (0 or not after Start = to the end of the video)")
    stride: IntProperty(name="Stride", default=1, min=1, soft_max=10,
                        description="Process every n-th frame (source frame numbers are kept)")

    # --- model options ------------------------------------------------------------------------------
    reset_interval: IntProperty(
        name="Reset Interval", default=100, min=1, soft_max=1000,
        description="Restart the model's recurrent state every n processed frames (bounds drift on long clips)")
    ttt3r: BoolProperty(name="TTT3R", default=True,
                        description="Test-time-training state update (better long-clip stability)")
    detection_threshold: FloatProperty(name="Detection Threshold", default=0.3, min=0.0, max=1.0,
                                       description="Minimum person detection score")
    precision: EnumProperty(name="Precision", items=PRECISION_CHOICES, default="auto",
                            description="Numeric precision of the model on the server")
    input_size: IntProperty(name="Input Size", default=512, min=64, max=4096, step=16,
                            description="Long side of the model's input image in pixels (a multiple of 16; "
                                        "512 for the released model, smaller is faster and coarser)")

    # --- points -------------------------------------------------------------------------------------
    point_stride: IntProperty(
        name="Point Stride", default=4, min=1, soft_max=16,
        description="Keep every n-th pixel along rows and columns of the model image as a point (higher = fewer points)")
    max_points_per_frame: IntProperty(
        name="Max Points per Frame", default=10000, min=0, soft_max=200000,
        description="Cap on each frame's points after the other filters (0 = no points)")
    point_conf_threshold: FloatProperty(
        name="Confidence", default=1.5, min=0.0, soft_max=10.0,
        description="Keep points whose model confidence is above this (the model's confidence starts at 1)")
    remove_humans_from_points: BoolProperty(name="Remove People", default=True,
                                            description="Leave the people's pixels out of the scene points")
    point_mode: EnumProperty(name="Points", items=POINT_MODE_CHOICES, default="BOTH",
                             description="Which point clouds to build in the scene")

    # --- scene import -------------------------------------------------------------------------------
    scene_frame_start: IntProperty(name="Start Frame", default=1,
                                   description="Blender frame that shows the video's frame 0")
    import_meshes: BoolProperty(name="Body Meshes", default=True,
                                description="Skinned SMPL-X mesh under each armature")
    import_expressions: BoolProperty(name="Expressions", default=True,
                                     description="Facial expression shape keys, keyed per frame")
    pose_correctives: BoolProperty(name="Pose Correctives", default=False,
                                   description="SMPL-X pose-corrective shape keys, keyed per frame "
                                               "(truer shapes at joints; heavier scene, slower playback)")
    import_camera: BoolProperty(name="Camera", default=True, description="Animated camera matching the footage")
    video_background: BoolProperty(name="Video Background", default=True,
                                   description="Show the video as the camera's background")
    keep_frame_range: BoolProperty(name="Keep Frame Range", default=False,
                                   description="Leave the scene's frame range as it is (otherwise it becomes "
                                               "the frames the job processed)")
    min_track_frames: IntProperty(
        name="Min Track", default=3, min=1, soft_max=30,
        description="Leave out people tracked in fewer processed frames than this (1 = import every track); "
                    "the import report says how many were left out")
    rerun: EnumProperty(name="Re-run", items=RERUN_CHOICES, default="VERSION",
                        description="What importing a video again does to the collections of its earlier runs")
    footage_in_renders: BoolProperty(name="Footage in Renders", default=True,
                                     description="F12 renders show the video behind the result (transparent film, "
                                                 "the compositor lays the render over the clip, Standard view)")
    point_radius: FloatProperty(name="Point Size", default=0.01, min=0.0001, soft_max=0.1, unit="LENGTH",
                                description="Display radius of the imported points")

    def job_options(self) -> dict:
        """The `submit` options map: frame range/stride, model and point options (plain types only)."""
        return {
            "start": int(self.frame_start),
            "end": int(self.frame_end) if self.frame_end > self.frame_start else None,
            "stride": int(self.stride),
            "reset_interval": int(self.reset_interval),
            "ttt3r": bool(self.ttt3r),
            "detection_threshold": round(float(self.detection_threshold), 6),
            "conf_threshold": round(float(self.point_conf_threshold), 6),
            "point_stride": int(self.point_stride),
            "max_points_per_frame": int(self.max_points_per_frame) if self.point_mode != "NONE" else 0,
            "remove_humans_from_points": bool(self.remove_humans_from_points),
            "precision": str(self.precision),
            "size": int(self.input_size) // 16 * 16,
        }

    def import_options(self) -> dict:
        """Options for the scene builder (`core.scene_plan.ImportOptions` field names)."""
        return {
            "scene_frame_start": int(self.scene_frame_start),
            "import_camera": bool(self.import_camera),
            "video_background": bool(self.video_background),
            "import_meshes": bool(self.import_meshes),
            "expressions": bool(self.import_expressions),
            "pose_correctives": bool(self.pose_correctives),
            "point_mode": str(self.point_mode),
            "point_radius": float(self.point_radius),
            "min_track_frames": int(self.min_track_frames),
            "keep_frame_range": bool(self.keep_frame_range),
            "rerun": str(self.rerun),
            "footage_in_renders": bool(self.footage_in_renders),
        }


CLASSES = (HUMAN3R_PG_settings,)


def attach() -> None:
    bpy.types.Scene.human3r = PointerProperty(type=HUMAN3R_PG_settings)


def detach() -> None:
    if hasattr(bpy.types.Scene, "human3r"):
        del bpy.types.Scene.human3r
