"""The SMPL-X body model: locating the user's file, loading it with the reference settings, and the
cheap per-person joint computations the engine needs.

The SMPL-X file is licensed per user, so it never ships with the project; where it is looked for is
`backend.model_files.resolve_smplx_path` (re-exported here with `SmplxNotFoundError`).

Settings are the reference's: neutral, 10 betas, 10 expression coefficients, no
hand PCA, `flat_hand_mean=True`. Joint order is the standard 55-joint SMPL-X order; the body model
is used in its own rest frame (y up), and every pose here is a *local* rotation per joint.

torch and smplx are imported lazily so `human3r --help` stays fast.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from backend.model_files import SmplxNotFoundError, how_to_get_smplx, resolve_smplx_path

__all__ = ["BodyModel", "SMPLX_SETTINGS", "NUM_JOINTS", "SmplxNotFoundError", "how_to_get_smplx", "resolve_smplx_path"]

if TYPE_CHECKING:  # pragma: no cover
    import torch

# The reference's layer settings; also written into every result header.
SMPLX_SETTINGS: dict[str, Any] = {
    "model_type": "smplx",
    "gender": "neutral",
    "num_betas": 10,
    "num_expression_coeffs": 10,
    "use_pca": False,
    "flat_hand_mean": True,
}
NUM_JOINTS = 55
PELVIS, HEAD = 0, 15  # indices in the 55-joint order


def _shaped(template: "torch.Tensor", shapedirs: "torch.Tensor", exprdirs: "torch.Tensor", betas: "torch.Tensor",
            expression: "torch.Tensor | None") -> "torch.Tensor":
    """template [J, 3] + shapedirs [J, 3, 10] · betas [n, 10] (+ exprdirs · expression) -> [n, J, 3]."""
    rest = template + (shapedirs @ betas.T).permute(2, 0, 1)
    if expression is not None:
        rest = rest + (exprdirs @ expression.T).permute(2, 0, 1)
    return rest


@dataclass
class BodyModel:
    """A loaded SMPL-X layer plus precomputed joint bases (all tensors float32 on `device`).

    Attributes:
        layer: the `smplx.SMPLX` module (reference settings).
        parents: [55] long, parent joint index (-1 for the root).
        joint_template: [55, 3] rest joints of the mean shape, body frame, metres.
        joint_shapedirs / joint_exprdirs: [55, 3, 10] joint offsets per beta / expression coefficient
            (the joint regressor applied to the vertex blend shapes).
        path: the file it was read from.
    """

    layer: Any
    parents: "torch.Tensor"
    joint_template: "torch.Tensor"
    joint_shapedirs: "torch.Tensor"
    joint_exprdirs: "torch.Tensor"
    path: Path
    _head_chain: tuple[int, ...]
    _chain_bases: tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]  # the three bases at the chain joints

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: "torch.device | str" = "cpu") -> "BodyModel":
        """Resolve and load the SMPL-X file (see `resolve_smplx_path`) onto `device`."""
        import smplx
        import torch

        file = resolve_smplx_path(path)
        settings = {k: v for k, v in SMPLX_SETTINGS.items() if k != "model_type"}
        try:
            layer = smplx.SMPLX(str(file), **settings).to(device).train(False)
        except Exception as exc:  # a corrupt or foreign file: say which and why
            raise ValueError(f"{file}: not a usable SMPL-X model file ({type(exc).__name__}: {exc})") from exc
        regressor = layer.J_regressor  # [55, V]
        joint_template = regressor @ layer.v_template
        joint_shapedirs = torch.einsum("jv,vcb->jcb", regressor, layer.shapedirs)
        joint_exprdirs = torch.einsum("jv,vcb->jcb", regressor, layer.expr_dirs)
        parents = layer.parents.clone()
        parents[0] = -1
        chain = [HEAD]
        while chain[-1] != PELVIS:
            chain.append(int(parents[chain[-1]]))
        chain = tuple(reversed(chain))
        bases = tuple(b[list(chain)] for b in (joint_template, joint_shapedirs, joint_exprdirs))
        return cls(layer, parents, joint_template, joint_shapedirs, joint_exprdirs, file, chain, bases)

    @property
    def device(self) -> "torch.device":
        return self.joint_template.device

    def rest_joints(self, betas: "torch.Tensor", expression: "torch.Tensor | None" = None) -> "torch.Tensor":
        """Shaped rest joints, body frame: betas [n, 10], expression [n, 10] -> [n, 55, 3].

        Equal to the joint regressor applied to the shaped template (SMPL-X regresses joints from
        the shape- *and* expression-blended vertices).
        """
        return _shaped(self.joint_template, self.joint_shapedirs, self.joint_exprdirs, betas, expression)

    def pelvis_and_head(self, local_rotmats: "torch.Tensor", betas: "torch.Tensor",
                        expression: "torch.Tensor") -> tuple["torch.Tensor", "torch.Tensor"]:
        """Pelvis rest joint j0 and posed head joint h0 of the body with **zero** global orient.

        Args:
            local_rotmats: [n, J, 3, 3] local joint rotations in the 55-joint order (J >= 16; only
                the spine chain 3, 6, 9, 12 matters; index 0 is ignored).
            betas, expression: [n, 10].
        Returns:
            (j0, h0), each [n, 3], body frame, zero translation — what the SMPL-X layer's joints 0 and
            15 are for that pose with global_orient = 0 and transl = 0.
        """
        chain = self._head_chain  # (0, 3, 6, 9, 12, 15)
        joints = _shaped(*self._chain_bases, betas, expression)  # rest joints of the chain only, [n, 6, 3]
        offsets = joints[:, 1:] - joints[:, :-1]  # bone vectors along the chain
        # bone k is rotated by the product of the local rotations of the chain joints 1..k (the root's
        # rotation is the zero global orient): 1, R3, R3 R6, R3 R6 R9, R3 R6 R9 R12
        pos = joints[:, 0] + offsets[:, 0]
        rot = None
        for k, joint in enumerate(chain[1:-1], start=1):
            rot = local_rotmats[:, joint] if rot is None else rot @ local_rotmats[:, joint]
            pos = pos + (rot @ offsets[:, k, :, None])[..., 0]
        return joints[:, 0], pos

    def forward(self, params: dict[str, "torch.Tensor"]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Run the SMPL-X layer on standard parameters: axis-angle `global_orient` [n, 3], `body_pose` [n, 21, 3],
        `left_hand_pose`/`right_hand_pose` [n, 15, 3], `jaw_pose` [n, 3], `betas`/`expression` [n, 10], `transl` [n, 3].

        Returns (vertices [n, V, 3], joints [n, 127, 3]) in the frame the parameters live in.
        """
        n = params["betas"].shape[0]
        zeros = params["betas"].new_zeros(n, 3)
        out = self.layer(
            betas=params["betas"], expression=params["expression"],
            global_orient=params["global_orient"].reshape(n, 3),
            body_pose=params["body_pose"].reshape(n, 63),
            left_hand_pose=params["left_hand_pose"].reshape(n, 45),
            right_hand_pose=params["right_hand_pose"].reshape(n, 45),
            jaw_pose=params["jaw_pose"].reshape(n, 3),
            leye_pose=params.get("leye_pose", zeros).reshape(n, 3),
            reye_pose=params.get("reye_pose", zeros).reshape(n, 3),
            transl=params["transl"].reshape(n, 3),
        )
        return out.vertices, out.joints

    def header_arrays(self) -> dict[str, np.ndarray]:
        """The body-model data for the result header (protocol.py `header.body_model`).

        faces [F, 3] i4, lbs_weights [V, 55] f4, parents [55] i4 (-1 root), v_template [V, 3] f4,
        shapedirs [V, 3, 10] f4, exprdirs [V, 3, 10] f4, J_regressor [55, V] f4 (dense).
        """
        layer = self.layer

        def f4(t: "torch.Tensor") -> np.ndarray:
            return np.ascontiguousarray(t.detach().cpu().numpy().astype("<f4"))

        return {
            "faces": np.ascontiguousarray(np.asarray(layer.faces, dtype="<i4")),
            "lbs_weights": f4(layer.lbs_weights),
            "parents": self.parents.cpu().numpy().astype("<i4"),
            "v_template": f4(layer.v_template),
            "shapedirs": f4(layer.shapedirs),
            "exprdirs": f4(layer.expr_dirs),
            "J_regressor": f4(layer.J_regressor),
        }

    def header_settings(self) -> dict[str, Any]:
        """SMPL-X settings and joint names for the result header (`header.smplx`)."""
        from smplx.joint_names import JOINT_NAMES

        return {**SMPLX_SETTINGS, "joint_names": list(JOINT_NAMES[:NUM_JOINTS]),
                "file_name": self.path.name, "rotation": "axis-angle", "pose_space": "local, flat hand mean"}
