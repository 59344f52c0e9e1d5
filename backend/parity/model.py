"""Numerical parity against a reference fixture folder (layout of shared/fixtures/parity-small).

A fixture folder holds `config.json` (reference config + shrunk hard-coded sizes),
`checkpoint.safetensors`, `inputs.npz` (the exact preprocessed `img` / `img_mhmr` / `reset` per
view, overlap views included) and `outputs_ttt3r.npz` / `outputs_plain.npz` (every per-view output,
`viewNNN/<name>`, plus `debug/viewNNN/<name>` intermediates).

Rule: each array must satisfy max|a - b| <= 5e-5 * max|ref| (`backend.parity.arrays`); detection
counts, detection sets (the NMS'd score map's cells above threshold) and track ids must be identical.
Used by `scripts/parity.py`, `tests/model/test_parity.py` and `tests/parity/`.

A CPU whose float32 arithmetic rounds differently from the fixture machine's (another GEMM or convolution
kernel: an AVX2-only CPU against the AVX-512 one the fixture matched bit for bit) differs by an ulp or so
everywhere, which the rule absorbs, except where the CroCo encoder rounds q and k to float16 (spec §8.1): an
fp32 value next to a float16 rounding boundary then flips by one float16 ulp (4.9e-4 relative), and the
token it belongs to leaves the rule. `fixture_arithmetic` tells the two machines apart, and
`reference_encoder` feeds the reference's own encoder tokens to the rest of the model so that everything
after the encoder is held to the same rule on any CPU.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backend.config import DINO_SIZES, DinoConfig, DPTConfig, ModelConfig
from backend.model.human3r import Human3R
from backend.model.checkpoint import read_checkpoint
from backend.model.state import FrameOutputs
from backend.parity.arrays import compare_arrays
RUNS = {"ttt3r": ("outputs_ttt3r.npz", True), "plain": ("outputs_plain.npz", False)}
INTEGER_OUTPUTS = {"smpl_id"}


def config_from_fixture(cfg: dict[str, Any]) -> ModelConfig:
    """ModelConfig from a fixture's config.json (`croco_kwargs`, `ARCroco3DStereoConfig`,
    `hardcoded_size_overrides`, `derived_sizes`, `inference`)."""
    ck, ac = cfg["croco_kwargs"], cfg["ARCroco3DStereoConfig"]
    hard = cfg.get("hardcoded_size_overrides", {})
    derived = cfg.get("derived_sizes", {})
    bb = hard.get("dinov2_backbone", {})
    dpt = hard.get("dpt_heads", {})
    pos_embed = str(ck.get("pos_embed", "RoPE100"))
    if not pos_embed.startswith("RoPE"):
        raise ValueError(f"unsupported pos_embed {pos_embed!r} (only RoPE<base>)")
    name = bb.get("name", ac.get("backbone", "dinov2_vitl14"))
    base = DINO_SIZES.get(name, DinoConfig())  # official sizes unless the fixture shrank them
    backbone = DinoConfig(
        name=name, embed_dim=bb.get("embed_dim", base.embed_dim), depth=bb.get("depth", base.depth),
        num_heads=bb.get("num_heads", base.num_heads), mlp_ratio=float(bb.get("mlp_ratio", base.mlp_ratio)),
        patch_size=bb.get("patch_size", base.patch_size), pos_grid=bb.get("pos_embed_grid", base.pos_grid),
        interpolate_offset=float(bb.get("interpolate_offset", base.interpolate_offset)),
    )
    dpt_cfg = DPTConfig(feature_dim=dpt.get("feature_dim", 256), last_dim=dpt.get("last_dim", 128),
                        layer_dims=tuple(dpt.get("layer_dims", (96, 192, 384, 768))))
    return ModelConfig(
        patch_size=ck.get("patch_size", 16),
        enc_embed_dim=ck["enc_embed_dim"], enc_depth=ck["enc_depth"], enc_num_heads=ck["enc_num_heads"],
        dec_embed_dim=ck["dec_embed_dim"], dec_depth=ck["dec_depth"], dec_num_heads=ck["dec_num_heads"],
        state_dec_num_heads=ac.get("state_dec_num_heads", 16), mlp_ratio=float(ck.get("mlp_ratio", 4)),
        rope_base=float(pos_embed[4:] or 100),
        state_size=ac["state_size"], state_pe=ac.get("state_pe", "2d"), local_mem_size=ac.get("local_mem_size", 256),
        local_mem_depth=derived.get("local_memory", {}).get("depth", 2),
        ray_enc_depth=ac.get("ray_enc_depth", 2), ray_enc_num_heads=derived.get("ray_map_encoder_num_heads", 16),
        dpt=dpt_cfg, rgb_head=bool(ac.get("rgb_head", True)), pose_head=bool(ac.get("pose_head", True)),
        msk_head=bool(ac.get("msk_head", True)), backbone=backbone, mhmr_img_res=ac["mhmr_img_res"],
        detection_threshold=float(cfg.get("inference", {}).get("detection_score_threshold", 0.3)),
    )


def _read_weights(folder: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """checkpoint.safetensors, keys canonical (both DPT alias names share one tensor)."""
    return dict(read_checkpoint(folder / "checkpoint.safetensors", config=cfg).state_dict)


def load_fixture_model(folder: str | Path) -> Human3R:
    """Build the fixture's model on CPU (config from config.json) and load its weights strictly."""
    folder = Path(folder)
    cfg = config_from_fixture(json.loads((folder / "config.json").read_text()))
    model = Human3R(cfg)
    weights = _read_weights(folder, cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"checkpoint/model key mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    # both alias names load into the one shared conv (their values are equal)
    model.load_state_dict(weights, strict=True)
    return model.train(False)


@dataclass(frozen=True)
class FixtureArithmetic:
    """Whether this machine's float32 arithmetic reproduces the fixture machine's, read off the DINOv2
    tokens of view 0 (float32 GEMMs, convolutions and softmax; no float16 step): same = bit-identical."""

    same: bool
    max_abs_diff: float

    def describe(self) -> str:
        """What a report or a skipped test says of a machine whose arithmetic is not the fixture machine's."""
        return (f"this CPU's float32 arithmetic is not the fixture machine's (DINOv2 tokens of view 0 differ by "
                f"{self.max_abs_diff:.1e}, not 0): the CroCo encoder's float16 q/k round trip flips isolated values "
                "by a float16 ulp here")


def fixture_arithmetic(model: Human3R, inputs: dict[str, np.ndarray], reference: Any) -> FixtureArithmetic | None:
    """Compare the DINOv2 tokens of view 0 with the TTT3R run's `debug/view000/mhmr_tokens` (None: the fixture
    does not hold them)."""
    if "debug/view000/mhmr_tokens" not in reference.files:
        return None
    with torch.no_grad():
        ours = model.backbone(torch.from_numpy(inputs["img_mhmr"][0])).numpy()
    ref = reference["debug/view000/mhmr_tokens"]
    return FixtureArithmetic(bool(np.array_equal(ours, ref)), float(np.abs(ours - ref).max()))


@contextlib.contextmanager
def reference_encoder(model: Human3R, inputs: dict[str, np.ndarray], reference: Any):
    """Within: `model.encode` returns the reference's CroCo encoder tokens (`debug/viewNNN/enc_tokens` of the
    TTT3R run; the encoder does not depend on the state, so they serve the plain run too) for the view whose
    preprocessed image it is given (matched bit for bit against inputs.npz, so any caller's order works),
    with our positions and DINOv2 tokens. An image that is no fixture view raises ValueError."""
    ours = model.encode
    views = inputs["img"]

    def encode(img: torch.Tensor, img_mhmr: torch.Tensor):
        enc, pos, mhmr = ours(img, img_mhmr)
        pixels = img.detach().cpu().numpy()
        match = [v for v in range(len(views)) if np.array_equal(views[v], pixels)]
        if not match:
            raise ValueError("reference_encoder: an image that is not one of the fixture's views")
        tokens = torch.from_numpy(np.asarray(reference[f"debug/view{match[0]:03d}/enc_tokens"]))
        return tokens.to(enc.device, enc.dtype), pos, mhmr

    model.encode = encode
    try:
        yield model
    finally:
        del model.encode  # the instance attribute goes; the class's method shows again


def run_views(model: Human3R, inputs: dict[str, np.ndarray], use_ttt3r: bool) -> list[FrameOutputs]:
    """Feed every view of inputs.npz (overlap views included) through the streaming API."""
    state = model.init_stream()
    outs = []
    for v in range(inputs["img"].shape[0]):
        out, state = model.step(
            state, torch.from_numpy(inputs["img"][v]), torch.from_numpy(inputs["img_mhmr"][v]),
            reset=bool(inputs["reset"][v].reshape(-1)[0]), use_ttt3r=use_ttt3r, want_rgb=True,
        )
        outs.append(out)
    return outs


@dataclass
class ArrayStat:
    """Worst error of one output name over all views."""

    name: str
    max_abs_err: float = 0.0
    max_ref: float = 0.0
    worst_ratio: float = 0.0  # max over views of max|a-b| / max|ref|
    failures: list[str] = field(default_factory=list)

    def add(self, view: int, ref: np.ndarray, got: np.ndarray) -> None:
        diff = compare_arrays(got, ref, exact=True if self.name in INTEGER_OUTPUTS else None)
        if not diff.ok:
            self.failures.append(f"view{view:03d}: {diff.problem}")
        if np.isfinite(diff.max_ref):  # a shape mismatch has no statistics
            self.max_abs_err = max(self.max_abs_err, diff.max_abs)
            self.max_ref = max(self.max_ref, diff.max_ref)
            self.worst_ratio = max(self.worst_ratio, diff.ratio)


@dataclass
class RunReport:
    run: str
    stats: dict[str, ArrayStat]
    discrete_failures: list[str]

    @property
    def ok(self) -> bool:
        return not self.discrete_failures and all(not s.failures for s in self.stats.values())


def _detections(scores: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    rows, cols = np.nonzero(scores[0, ..., 0] >= threshold)
    return set(zip(rows.tolist(), cols.tolist()))


def compare_run(run: str, outs: list[FrameOutputs], ref: Any, threshold: float) -> RunReport:
    """Compare our per-view outputs with a fixture npz (`viewNNN/name`, `debug/viewNNN/name`)."""
    stats: dict[str, ArrayStat] = {}
    discrete: list[str] = []
    n_ref = ref["n_humans"] if "n_humans" in ref.files else None
    for v, out in enumerate(outs):
        ours = {k: t.detach().cpu().numpy() for k, t in out.as_dict(debug=True).items()}
        if n_ref is not None and int(n_ref[v]) != out.n_humans:
            discrete.append(f"view{v:03d}: {out.n_humans} people detected, reference {int(n_ref[v])}")
        for prefix in (f"view{v:03d}/", f"debug/view{v:03d}/"):
            for key in [k for k in ref.files if k.startswith(prefix)]:
                name = key[len(prefix):]
                label = ("debug/" if prefix.startswith("debug") else "") + name
                stat = stats.setdefault(label, ArrayStat(label))
                if name not in ours:
                    stat.failures.append(f"view{v:03d}: output missing")
                    continue
                stat.add(v, ref[key], ours[name])
                if name == "smpl_scores":
                    a, b = _detections(ref[key], threshold), _detections(ours[name], threshold)
                    if a != b:
                        discrete.append(f"view{v:03d}: detection set {sorted(b)} != reference {sorted(a)}")
        # people absent in the reference must be absent here too
        if not any(k.startswith(f"view{v:03d}/smpl_id") for k in ref.files) and out.n_humans:
            discrete.append(f"view{v:03d}: reference has no people, we have {out.n_humans}")
    return RunReport(run, stats, discrete)


def check_fixture(folder: str | Path, runs: tuple[str, ...] = ("ttt3r", "plain"),
                  from_reference_encoder: bool = False) -> tuple[list[RunReport], FixtureArithmetic | None]:
    """Run the model over a fixture folder and compare every output it holds; also say whether this machine's
    float32 arithmetic is the fixture machine's (None: the fixture cannot tell). from_reference_encoder: the
    chain after the encoder only, from the reference's encoder tokens (`reference_encoder`)."""
    folder = Path(folder)
    model = load_fixture_model(folder)
    inputs = dict(np.load(folder / "inputs.npz"))
    threshold = model.config.detection_threshold
    reference_ttt3r = np.load(folder / RUNS["ttt3r"][0])
    reports = []
    for run in runs:
        fname, ttt3r = RUNS[run]
        ref = reference_ttt3r if run == "ttt3r" else np.load(folder / fname)
        with (reference_encoder(model, inputs, reference_ttt3r) if from_reference_encoder
              else contextlib.nullcontext()):
            outs = run_views(model, inputs, ttt3r)
        reports.append(compare_run(run, outs, ref, threshold))
    return reports, fixture_arithmetic(model, inputs, reference_ttt3r)


def format_report(report: RunReport) -> str:
    lines = [f"== run {report.run}: {'OK' if report.ok else 'FAIL'}",
             f"{'output':32s} {'max|a-b|':>11s} {'max|ref|':>11s} {'ratio':>10s}"]
    for name in sorted(report.stats):
        s = report.stats[name]
        flag = "" if not s.failures else "  <-- FAIL"
        lines.append(f"{name:32s} {s.max_abs_err:11.3e} {s.max_ref:11.3e} {s.worst_ratio:10.2e}{flag}")
        lines.extend(f"    {f}" for f in s.failures[:5])
    lines.extend(f"  discrete: {d}" for d in report.discrete_failures)
    return "\n".join(lines)
