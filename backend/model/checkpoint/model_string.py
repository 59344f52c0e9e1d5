"""From the reference's model constructor string + state-dict shapes to a `ModelConfig`.

The reference stores its architecture as Python source, e.g.
``ARCroco3DStereo(ARCroco3DStereoConfig(state_size=768, ..., depth_mode=('exp', -inf, inf), ...))``
and `eval`s it. Here the string is parsed with `ast` and only literals are accepted (strings, numbers,
booleans, None, tuples/lists of literals, the names `inf`/`nan` and their negation); anything else
(calls, attributes, `__import__`, operators) is rejected without being evaluated.

Sizes the reference hard-codes (DPT widths, DINOv2 dims, ...) are read off the tensor shapes, so
shrunk test checkpoints and the full-size release both map to the right config.
"""
from __future__ import annotations

import ast
import math
import re
from collections.abc import Mapping
from typing import Any

from backend.config import DINO_SIZES, DinoConfig, DPTConfig, ModelConfig
from backend.model.checkpoint.errors import ConfigMismatchError, ModelStringError, WrongModelError

Shapes = Mapping[str, tuple[int, ...]]

_OUTER_CALL = "ARCroco3DStereo"
_CONFIG_CALL = "ARCroco3DStereoConfig"
_INF_NAMES = {"inf": math.inf, "nan": math.nan}

# Values a Human3R checkpoint must have (the reference would build a different network otherwise).
_REQUIRED_VALUES: dict[str, Any] = {
    "output_mode": "pts3d+pose+smpl",
    "head_type": "dpt",
    "pos_embed": "RoPE100",
    "depth_mode": ("exp", -math.inf, math.inf),
    "conf_mode": ("exp", 1, math.inf),
    "pose_mode": ("exp", -math.inf, math.inf),
}
# Optional keys whose non-default values would change the network.
_FIXED_IF_PRESENT: dict[str, Any] = {
    "depth_head": False,
    "pose_conf_head": False,
    "norm_im2_in_dec": True,
}
# Keys that only matter for training or are rewritten by the reference's loader.
_IGNORED_KEYS = {
    "freeze", "landscape_only", "patch_embed_cls", "img_size", "mask_ratio",
    "use_prompt", "is_shallow", "prompt_size",
}
_PATCH_EMBED_CLASSES = {"ManyAR_PatchEmbed", "PatchEmbedDust3R"}
# Keys mapped onto ModelConfig fields (same name), checked against shapes where shapes carry them.
_PASSTHROUGH_KEYS = {
    "state_size", "state_pe", "local_mem_size", "state_dec_num_heads", "ray_enc_depth",
    "rgb_head", "pose_head", "msk_head", "backbone", "mhmr_img_res",
    "enc_embed_dim", "enc_depth", "enc_num_heads", "dec_embed_dim", "dec_depth", "dec_num_heads",
    "patch_size", "mlp_ratio",
}
_KNOWN_KEYS = set(_REQUIRED_VALUES) | set(_FIXED_IF_PRESENT) | _IGNORED_KEYS | _PASSTHROUGH_KEYS

_STRING_HINT = "the checkpoint's model string should look like the one in config/trian_human3r.yaml of Human3R"


def _literal(node: ast.AST, where: str) -> Any:
    """Evaluate a literal-only expression node; reject everything else."""
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (str, int, float, bool))):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_literal(elt, where) for elt in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Name) and node.id in _INF_NAMES:
        return _INF_NAMES[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _literal(node.operand, where)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    raise ModelStringError(
        f"model string: {where} is not a literal ({ast.dump(node)[:80]}); "
        "only strings, numbers, booleans, None, inf and tuples/lists of these are accepted",
        _STRING_HINT)


def _call_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return node.func.id
    return None


def parse_model_string(model_string: str) -> dict[str, Any]:
    """Parse ``ARCroco3DStereo(ARCroco3DStereoConfig(k=v, ...))`` into ``{k: v}`` without `eval`.

    Applies the reference loader's rewrite (`ManyAR_PatchEmbed` -> `PatchEmbedDust3R`,
    `landscape_only=False`). Tuples stay tuples; `inf` becomes `math.inf`.
    Raises `ModelStringError` for syntax errors, other constructors or non-literal values.
    """
    if not isinstance(model_string, str) or not model_string.strip():
        raise ModelStringError("model string is empty or not a string", _STRING_HINT)
    try:
        tree = ast.parse(model_string.strip(), mode="eval")
    except SyntaxError as exc:
        raise ModelStringError(f"model string is not valid Python call syntax: {exc.msg}", _STRING_HINT) from None
    outer = tree.body
    if _call_name(outer) != _OUTER_CALL:
        got = _call_name(outer) or type(outer).__name__
        raise ModelStringError(f"model string builds {got!r}, expected {_OUTER_CALL}(...)", _STRING_HINT)
    assert isinstance(outer, ast.Call)
    if outer.keywords or len(outer.args) != 1 or _call_name(outer.args[0]) != _CONFIG_CALL:
        raise ModelStringError(f"model string: expected {_OUTER_CALL}({_CONFIG_CALL}(...)) with a single argument",
                               _STRING_HINT)
    inner = outer.args[0]
    assert isinstance(inner, ast.Call)
    if inner.args:
        raise ModelStringError(f"model string: {_CONFIG_CALL} takes keyword arguments only", _STRING_HINT)
    kwargs: dict[str, Any] = {}
    for kw in inner.keywords:
        if kw.arg is None:
            raise ModelStringError("model string: '**' unpacking is not accepted", _STRING_HINT)
        if kw.arg in kwargs:
            raise ModelStringError(f"model string: keyword {kw.arg!r} given twice", _STRING_HINT)
        kwargs[kw.arg] = _literal(kw.value, f"value of {kw.arg!r}")
    if kwargs.get("patch_embed_cls") == "ManyAR_PatchEmbed":
        kwargs["patch_embed_cls"] = "PatchEmbedDust3R"  # reference loader's rewrite; numerically identical
    kwargs["landscape_only"] = False
    return kwargs


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    try:
        return a == b or (math.isnan(a) and math.isnan(b))
    except TypeError:
        return False


def validate_model_kwargs(kwargs: Mapping[str, Any]) -> None:
    """Check parsed model-string kwargs describe the Human3R network; raise `ModelStringError` if not."""
    for key, wanted in _REQUIRED_VALUES.items():
        if key not in kwargs:
            raise ModelStringError(f"model string lacks {key}={wanted!r}: not a Human3R model", _STRING_HINT)
        if not _same_value(kwargs[key], wanted):
            raise ModelStringError(
                f"unsupported {key}={kwargs[key]!r}; Human3R uses {key}={wanted!r}",
                "only the released Human3R architecture is implemented")
    for key, wanted in _FIXED_IF_PRESENT.items():
        if key in kwargs and not _same_value(kwargs[key], wanted):
            raise ModelStringError(f"unsupported {key}={kwargs[key]!r} (Human3R uses {wanted!r})",
                                   "only the released Human3R architecture is implemented")
    cls = kwargs.get("patch_embed_cls", "PatchEmbedDust3R")
    if cls not in _PATCH_EMBED_CLASSES:
        raise ModelStringError(f"unsupported patch_embed_cls={cls!r}", "expected PatchEmbedDust3R or ManyAR_PatchEmbed")
    backbone = kwargs.get("backbone")
    if not isinstance(backbone, str) or not re.fullmatch(r"dinov2_vit[sblg]14", backbone):
        raise ModelStringError(
            f"model string has backbone={backbone!r}; Human3R needs a DINOv2 backbone such as 'dinov2_vitl14'",
            "this looks like a CUT3R checkpoint without the human branch" if backbone is None else _STRING_HINT)
    unknown = sorted(set(kwargs) - _KNOWN_KEYS)
    if unknown:
        raise ModelStringError(f"model string has unknown keywords: {', '.join(unknown)}",
                               "this checkpoint was made by a different version of the reference code")


# --------------------------------------------------------------------------------------------------
# shapes -> sizes

_ANCHOR_KEYS = (
    "patch_embed.proj.weight", "decoder_embed.weight", "register_tokens.weight",
    "backbone.encoder.cls_token", "backbone.encoder.pos_embed", "backbone.encoder.patch_embed.proj.weight",
    "downstream_head.dpt_self.scratch.layer1_rn.weight", "downstream_head.dpt_self.head.2.weight",
    "downstream_head.mlp_fuse.mlp.layers.0.weight", "downstream_head.decpose.mlp.layers.2.weight",
)


def _count_blocks(shapes: Shapes, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    indices = {int(m.group(1)) for key in shapes if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _shape(shapes: Shapes, key: str) -> tuple[int, ...]:
    try:
        return tuple(shapes[key])
    except KeyError:
        raise WrongModelError(f"state dict lacks {key!r}", "not a Human3R checkpoint") from None


def _dino_heads(name: str, embed_dim: int, depth: int, enc_head_dim: int) -> int:
    """DINOv2 head count: the named size's when the dims match, else keep the CroCo encoder's head dim.

    Heads do not change any tensor shape. Every released DINOv2 and CroCo model uses head dim 64, and
    the shrunk test fixture keeps the two equal (64 wide / 2 heads in both), so this rule reproduces both.
    """
    named = DINO_SIZES.get(name)
    if named is not None and named.embed_dim == embed_dim and named.depth == depth:
        return named.num_heads
    if enc_head_dim <= 0 or embed_dim % enc_head_dim:
        raise ConfigMismatchError(
            f"cannot infer DINOv2 head count for embed_dim={embed_dim} (encoder head dim {enc_head_dim})",
            "write the config explicitly (converted checkpoints carry it in their .json)")
    return embed_dim // enc_head_dim


def infer_config(model_kwargs: Mapping[str, Any], shapes: Shapes) -> ModelConfig:
    """Build the `ModelConfig` of a checkpoint from its model-string kwargs and tensor shapes.

    Args:
        model_kwargs: output of `parse_model_string` (validated here).
        shapes: ``{state_dict_key: shape}`` with canonical keys (no ``module.`` prefix).
    Returns the config; sizes present in both the string and the shapes must agree, otherwise
    `ConfigMismatchError`. Missing anchor keys raise `WrongModelError`.
    """
    validate_model_kwargs(model_kwargs)
    missing = [k for k in _ANCHOR_KEYS if k not in shapes]
    if missing:
        human = [k for k in missing if k.startswith(("backbone.", "downstream_head.mlp_fuse", "downstream_head.dec"))]
        raise WrongModelError(
            f"state dict lacks {len(missing)} key(s) every Human3R checkpoint has: {', '.join(missing)}",
            "this looks like a CUT3R checkpoint without the human branch" if human == missing
            else "not a Human3R checkpoint")
    kw = dict(model_kwargs)

    enc_embed_dim, _, patch, _ = _shape(shapes, "patch_embed.proj.weight")
    dec_embed_dim, enc_in = _shape(shapes, "decoder_embed.weight")
    state_size = _shape(shapes, "register_tokens.weight")[0]
    enc_depth = _count_blocks(shapes, "enc_blocks.")
    dec_depth = _count_blocks(shapes, "dec_blocks.")
    mlp_hidden = _shape(shapes, "enc_blocks.0.mlp.fc1.weight")[0] if enc_depth else 4 * enc_embed_dim
    measured = {
        "enc_embed_dim": enc_embed_dim, "enc_depth": enc_depth, "dec_embed_dim": dec_embed_dim,
        "dec_depth": dec_depth, "state_size": state_size, "patch_size": patch,
        "mlp_ratio": mlp_hidden / enc_embed_dim,
    }
    if "pose_retriever.mem" in shapes:
        measured["local_mem_size"] = _shape(shapes, "pose_retriever.mem")[1]
    if any(k.startswith("enc_blocks_ray_map.") for k in shapes):
        measured["ray_enc_depth"] = _count_blocks(shapes, "enc_blocks_ray_map.")
    mismatches = [f"{k}={kw[k]!r} in the model string but {v!r} in the weights"
                  for k, v in measured.items() if k in kw and not _same_value(kw[k], v)]
    if enc_in != enc_embed_dim:
        mismatches.append(f"decoder_embed takes {enc_in} channels but the encoder is {enc_embed_dim} wide")
    if mismatches:
        raise ConfigMismatchError("config does not match weights: " + "; ".join(mismatches),
                                  "the model string and the tensors come from different models")

    # heads flags come from the string (reference defaults False) and must agree with the keys present
    flags = {}
    for flag, prefix in (("rgb_head", "downstream_head.dpt_rgb."), ("pose_head", "downstream_head.pose_head."),
                         ("msk_head", "downstream_head.mlp_msk.")):
        present = any(k.startswith(prefix) for k in shapes)
        value = bool(kw.get(flag, False))
        if value != present:
            raise ConfigMismatchError(f"config does not match weights: {flag}={value} but {prefix}* keys are "
                                      f"{'present' if present else 'absent'}", "")
        flags[flag] = value

    for needed in ("enc_num_heads", "dec_num_heads"):
        if needed not in kw:
            raise ModelStringError(f"model string lacks {needed} (head counts are not visible in the weights)",
                                   _STRING_HINT)
    for key, dim in (("enc_num_heads", enc_embed_dim), ("dec_num_heads", dec_embed_dim)):
        if not isinstance(kw[key], int) or kw[key] <= 0 or dim % kw[key]:
            raise ConfigMismatchError(f"{key}={kw[key]!r} does not divide width {dim}", "")

    # DPT widths (hard-coded in the reference; shrunk in test fixtures)
    layer_dims = tuple(_shape(shapes, f"downstream_head.dpt_self.scratch.layer{i}_rn.weight")[1] for i in range(1, 5))
    feature_dim = _shape(shapes, "downstream_head.dpt_self.scratch.layer1_rn.weight")[0]
    last_dim = _shape(shapes, "downstream_head.dpt_self.head.2.weight")[0]

    # DINOv2 backbone (hard-coded per name in the reference; shrunk in test fixtures)
    bb_embed = _shape(shapes, "backbone.encoder.cls_token")[-1]
    bb_depth = _count_blocks(shapes, "backbone.encoder.blocks.")
    bb_patch = _shape(shapes, "backbone.encoder.patch_embed.proj.weight")[-1]
    pos_tokens = _shape(shapes, "backbone.encoder.pos_embed")[1] - 1
    pos_grid = math.isqrt(pos_tokens)
    if pos_grid * pos_grid != pos_tokens:
        raise ConfigMismatchError(f"backbone.encoder.pos_embed has {pos_tokens} patch positions, not a square", "")
    bb_hidden = _shape(shapes, "backbone.encoder.blocks.0.mlp.fc1.weight")[0] if bb_depth else 4 * bb_embed
    bb_name = kw["backbone"]
    backbone = DinoConfig(
        name=bb_name, embed_dim=bb_embed, depth=bb_depth,
        num_heads=_dino_heads(bb_name, bb_embed, bb_depth, enc_embed_dim // kw["enc_num_heads"]),
        mlp_ratio=bb_hidden / bb_embed, patch_size=bb_patch, pos_grid=pos_grid,
    )

    defaults = ModelConfig()
    decpose_out = _shape(shapes, "downstream_head.decpose.mlp.layers.2.weight")[0]
    if decpose_out % 6:
        raise ConfigMismatchError(f"decpose outputs {decpose_out} values, not a multiple of 6 (6D rotations)", "")
    rope = re.fullmatch(r"RoPE(\d+)", kw["pos_embed"])
    assert rope is not None  # validated above
    config = ModelConfig(
        patch_size=patch, enc_embed_dim=enc_embed_dim, enc_depth=enc_depth, enc_num_heads=kw["enc_num_heads"],
        dec_embed_dim=dec_embed_dim, dec_depth=dec_depth, dec_num_heads=kw["dec_num_heads"],
        state_dec_num_heads=kw.get("state_dec_num_heads", defaults.state_dec_num_heads),
        mlp_ratio=mlp_hidden / enc_embed_dim, rope_base=float(rope.group(1)),
        state_size=state_size, state_pe=kw.get("state_pe", defaults.state_pe),
        local_mem_size=measured.get("local_mem_size", defaults.local_mem_size),
        local_mem_depth=_count_blocks(shapes, "pose_retriever.write_blocks.") or defaults.local_mem_depth,
        ray_enc_depth=measured.get("ray_enc_depth", defaults.ray_enc_depth),
        ray_enc_num_heads=defaults.ray_enc_num_heads,
        dpt=DPTConfig(feature_dim=feature_dim, last_dim=last_dim, layer_dims=layer_dims),  # type: ignore[arg-type]
        backbone=backbone,
        mhmr_img_res=kw.get("mhmr_img_res", defaults.mhmr_img_res),
        num_smpl_rotations=decpose_out // 6,
        num_betas=_shape(shapes, "downstream_head.decshape.mlp.layers.2.weight")[0],
        num_expression=_shape(shapes, "downstream_head.decexpression.mlp.layers.2.weight")[0],
        mask_patch_outputs=(_shape(shapes, "downstream_head.mlp_msk.mlp.layers.2.weight")[0]
                            if flags["msk_head"] else defaults.mask_patch_outputs),
        **flags,
    )
    check_config_against_shapes(config, shapes)
    return config


def check_config_against_shapes(config: ModelConfig, shapes: Shapes) -> None:
    """Cheap consistency check of a config against the weights (no model needed).

    Compares the sizes visible in tensor shapes; raises `ConfigMismatchError` listing every difference.
    Used for configs that come from JSON or from the caller.
    """
    expected: dict[str, tuple[int, ...]] = {
        "patch_embed.proj.weight": (config.enc_embed_dim, 3, config.patch_size, config.patch_size),
        "decoder_embed.weight": (config.dec_embed_dim, config.enc_embed_dim),
        "register_tokens.weight": (config.state_size, config.enc_embed_dim),
        "enc_blocks.0.mlp.fc1.weight": (int(config.enc_embed_dim * config.mlp_ratio), config.enc_embed_dim),
        "pose_retriever.mem": (1, config.local_mem_size, 2 * config.dec_embed_dim),
        "backbone.encoder.cls_token": (1, 1, config.backbone.embed_dim),
        "backbone.encoder.pos_embed": (1, config.backbone.pos_grid ** 2 + 1, config.backbone.embed_dim),
        "backbone.encoder.patch_embed.proj.weight": (config.backbone.embed_dim, 3, config.backbone.patch_size,
                                                     config.backbone.patch_size),
        "backbone.encoder.blocks.0.mlp.fc1.weight": (int(config.backbone.embed_dim * config.backbone.mlp_ratio),
                                                     config.backbone.embed_dim),
        "downstream_head.dpt_self.head.2.weight": (config.dpt.last_dim, config.dpt.feature_dim // 2, 3, 3),
        "downstream_head.decpose.mlp.layers.2.weight": (config.num_smpl_rotations * 6,
                                                        4 * (config.dec_embed_dim + config.backbone.embed_dim)),
        "downstream_head.decshape.mlp.layers.2.weight": (config.num_betas,
                                                         4 * (config.dec_embed_dim + config.backbone.embed_dim)),
        "downstream_head.decexpression.mlp.layers.2.weight": (config.num_expression,
                                                              4 * (config.dec_embed_dim + config.backbone.embed_dim)),
        "downstream_head.mlp_fuse.mlp.layers.0.weight": (4 * (config.enc_embed_dim + config.backbone.embed_dim),
                                                         config.enc_embed_dim + config.backbone.embed_dim),
    }
    for i, width in enumerate(config.dpt.layer_dims, start=1):
        expected[f"downstream_head.dpt_self.scratch.layer{i}_rn.weight"] = (config.dpt.feature_dim, width, 3, 3)
    if config.msk_head:
        expected["downstream_head.mlp_msk.mlp.layers.2.weight"] = (config.mask_patch_outputs,
                                                                  config.backbone.embed_dim)
    problems = [f"{key}: config implies {want}, weights have {tuple(shapes[key])}"
                for key, want in expected.items() if key in shapes and tuple(shapes[key]) != want]
    counts = {"enc_blocks.": config.enc_depth, "dec_blocks.": config.dec_depth,
              "dec_blocks_state.": config.dec_depth, "backbone.encoder.blocks.": config.backbone.depth,
              "enc_blocks_ray_map.": config.ray_enc_depth}
    for prefix, want_depth in counts.items():
        got_depth = _count_blocks(shapes, prefix)
        if got_depth != want_depth:
            problems.append(f"{prefix}*: config implies {want_depth} blocks, weights have {got_depth}")
    if problems:
        raise ConfigMismatchError("config does not match weights:\n  " + "\n  ".join(problems),
                                  "use the config written next to these weights, or re-run "
                                  "`human3r convert-checkpoint` on the original .pth")
