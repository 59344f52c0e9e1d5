"""Model configuration: frozen dataclasses and named presets.

One `ModelConfig` describes every size the Human3R network needs, including the sizes the reference
hard-codes (DPT feature widths, DINOv2 dims): the parity fixtures shrink those, the official
checkpoint keeps the reference values. Configs round-trip through plain JSON (`to_dict`/`from_dict`),
which is what `human3r convert-checkpoint` writes beside the safetensors file.

Presets:
- ``human3r-896-L``: the released model (DINOv2 ViT-L/14 at 896 px), loads ``human3r.pth``.
- ``human3r-672-S``: the paper's ViT-S/14 at 672 px variant (faster; same CUT3R part).
- ``tiny``: the shrunk sizes of ``../shared/fixtures/parity-small`` (tests and CPU benchmarks).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DinoConfig:
    """DINOv2 backbone of the human branch (Multi-HMR's fine-tuned copy, no register tokens)."""

    name: str = "dinov2_vitl14"
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    patch_size: int = 14
    pos_grid: int = 37  # stored pos_embed grid (518 px / 14); interpolated on every forward
    interpolate_offset: float = 0.1


@dataclass(frozen=True)
class DPTConfig:
    """Widths of the three DPT heads (self / cross / rgb); the reference hard-codes these."""

    feature_dim: int = 256
    last_dim: int = 128
    layer_dims: tuple[int, int, int, int] = (96, 192, 384, 768)


@dataclass(frozen=True)
class ModelConfig:
    """Every architecture size of Human3R (CUT3R backbone + human branch).

    Defaults are the released full-size model (`human3r-896-L`).
    """

    # CroCo / CUT3R image encoder (RoPE100, patch 16)
    patch_size: int = 16
    enc_embed_dim: int = 1024
    enc_depth: int = 24
    enc_num_heads: int = 16
    # paired decoder: image stream (dec_num_heads) and state stream (state_dec_num_heads)
    dec_embed_dim: int = 768
    dec_depth: int = 12
    dec_num_heads: int = 12
    state_dec_num_heads: int = 16
    mlp_ratio: float = 4.0
    rope_base: float = 100.0
    # recurrent state and pose-retriever memory
    state_size: int = 768
    state_pe: str = "2d"
    local_mem_size: int = 256
    local_mem_depth: int = 2
    # ray-map encoder: in the checkpoint, never run at inference
    ray_enc_depth: int = 2
    ray_enc_num_heads: int = 16
    # heads
    dpt: DPTConfig = field(default_factory=DPTConfig)
    rgb_head: bool = True
    pose_head: bool = True
    msk_head: bool = True
    # human branch
    backbone: DinoConfig = field(default_factory=DinoConfig)
    mhmr_img_res: int = 896
    num_smpl_rotations: int = 53
    num_betas: int = 10
    num_expression: int = 10
    mask_patch_outputs: int = 196  # 14 x 14 mask pixels per DINOv2 token
    detection_threshold: float = 0.3

    @property
    def dpt_hooks(self) -> tuple[int, int, int, int]:
        """Decoder layers read by the DPT heads: (0, depth*2//4, depth*3//4, depth)."""
        d = self.dec_depth
        return (0, d * 2 // 4, d * 3 // 4, d)

    @property
    def bb_token_res(self) -> int:
        """Side of the DINOv2 token grid (896 / 14 = 64)."""
        return self.mhmr_img_res // self.backbone.patch_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        """Build from `to_dict` output; unknown keys are an error (catches configs of other models)."""
        data = dict(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config fields: {', '.join(unknown)}")
        if isinstance(data.get("dpt"), dict):
            dpt = dict(data["dpt"])
            if "layer_dims" in dpt:
                dpt["layer_dims"] = tuple(dpt["layer_dims"])
            data["dpt"] = DPTConfig(**dpt)
        if isinstance(data.get("backbone"), dict):
            data["backbone"] = DinoConfig(**data["backbone"])
        return cls(**data)


DINO_SIZES: dict[str, DinoConfig] = {
    "dinov2_vits14": DinoConfig(name="dinov2_vits14", embed_dim=384, depth=12, num_heads=6),
    "dinov2_vitb14": DinoConfig(name="dinov2_vitb14", embed_dim=768, depth=12, num_heads=12),
    "dinov2_vitl14": DinoConfig(name="dinov2_vitl14", embed_dim=1024, depth=24, num_heads=16),
}

PRESETS: dict[str, ModelConfig] = {
    "human3r-896-L": ModelConfig(),
    "human3r-672-S": ModelConfig(backbone=DINO_SIZES["dinov2_vits14"], mhmr_img_res=672),
    # the shrunk sizes of ../shared/fixtures/parity-small (config.json there)
    "tiny": ModelConfig(
        enc_embed_dim=64, enc_depth=2, enc_num_heads=2,
        dec_embed_dim=64, dec_depth=4, dec_num_heads=2,
        state_size=32,
        dpt=DPTConfig(feature_dim=24, last_dim=12, layer_dims=(8, 16, 32, 64)),
        backbone=DinoConfig(name="dinov2_vits14", embed_dim=64, depth=2, num_heads=2),
        mhmr_img_res=168,
    ),
}


def preset(name: str) -> ModelConfig:
    """Return a named preset; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}") from None
