"""Per-frame camera intrinsics and extrinsics (OpenCV convention) from a result file's frames.

Camera axes are OpenCV's (x right, y down, z forward). The world is the same Z-up world as the AMASS
files (p = M·p_W, metres), so x_cam = R·p + t with [R|t] = world_to_camera; pixels = K·x_cam / z.
    frame_index [T], K [T, 3, 3], width, height, world_to_camera [T, 4, 4], camera_to_world [T, 4, 4],
    fps (video frames per second)
"""
from __future__ import annotations

import json

import numpy as np

from ..coords import M4


def camera_track(header: dict, frames: list[dict]) -> dict:
    ordered = sorted(frames, key=lambda m: int(m["index"]))
    c2w_w = np.stack([np.asarray(m["camera"]["cam_to_world"], np.float64) for m in ordered])
    K = np.stack([np.asarray(m["camera"]["K"], np.float64) for m in ordered])
    c2w = M4 @ c2w_w  # OpenCV camera axes -> Z-up world
    video = header.get("video") or {}
    cam0 = ordered[0]["camera"] if ordered else {}
    frac = video.get("fps_fraction")
    fps = float(frac[0]) / float(frac[1]) if frac and frac[1] else float(video.get("fps") or 0.0)
    return {"frame_index": np.array([int(m["index"]) for m in ordered], np.int32), "K": K,
            "width": int(cam0.get("width") or video.get("width") or 0),
            "height": int(cam0.get("height") or video.get("height") or 0),
            "camera_to_world": c2w, "world_to_camera": np.linalg.inv(c2w), "fps": fps}


def write_camera(track: dict, path_json: str, path_npz: str) -> None:
    np.savez(path_npz, **track)
    with open(path_json, "w", encoding="utf-8") as f:
        json.dump({"convention": "OpenCV camera (x right, y down, z forward); world Z up, metres",
                   "fps": track["fps"], "width": track["width"], "height": track["height"],
                   "frames": [{"frame_index": int(i), "K": k.tolist(), "world_to_camera": w.tolist()}
                              for i, k, w in zip(track["frame_index"], track["K"], track["world_to_camera"])]},
                  f, indent=1)
