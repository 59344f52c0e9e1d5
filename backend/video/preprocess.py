"""Per-frame model input preparation, reproducing the Human3R reference exactly.

Two tensors are made from one upright RGB frame, exactly as the reference's inference path makes them:

1. **CUT3R tensor** ``img`` (reference ``load_images`` with ``size``):
   PIL resize so the long side becomes ``size`` (new size with Python ``round``, i.e. banker's rounding;
   LANCZOS when the long side ``S > size``, else BICUBIC), centre crop to multiples of 16 (a square
   becomes 4:3), then ``(x / 255 - 0.5) / 0.5`` in float32 -> values in [-1, 1], shape [1, 3, h, w].
2. **Multi-HMR tensor** ``img_mhmr`` (reference ``pad_image``): the normalised tensor resized by
   ``min(R / h, R / w)`` to the floored size with bilinear ``F.interpolate`` (``align_corners=False``,
   no antialias), centred in an R x R square padded with -1.0.

Pixel coordinate conventions used by the mapping helpers (`FrameGeometry`):

* ``pixel_center=0.0`` (default, OpenCV): the centre of the top-left pixel is (0, 0); the image spans
  [-0.5, W - 0.5]. The model's intrinsics are in this convention (the reference's focal estimate uses
  integer pixel coordinates with pp = (w div 2, h div 2)).
* ``pixel_center=0.5`` (continuous / corner): pixel i covers [i, i + 1]; the image spans [0, W].

In the corner convention the mapping from model pixels to original-frame pixels is exact and simple:
``x_orig = (x_model + crop_left) * (W_orig / W_resized)`` and ``y_orig = (y_model + crop_top) *
(H_orig / H_resized)``, because PIL's resize maps pixel-centre i + 0.5 of the resized image to
(i + 0.5) * W_orig / W_resized in the original. x and y scales differ slightly because the resized
size is rounded. The reference's own rescale (``sx = W_orig / w``) ignores the crop; this one does not.

The optional JPEG round trip imitates the reference's video path (each decoded frame written with
``cv2.imwrite``, JPEG quality 95, and read back with PIL). It uses PIL's encoder at quality 95 with 4:2:0
chroma subsampling. Both wrap libjpeg(-turbo) with the same settings; on tennis.mp4 frames, Pillow 13 and
opencv-python-headless 4.14 gave identical bytes after decoding, but that is **not guaranteed** for other
library builds or versions.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

CUT3R_PATCH = 16  # crop to multiples of the CUT3R patch size
MHMR_PAD_VALUE = -1.0  # black in [-1, 1] space
JPEG_QUALITY = 95  # cv2.imwrite default used by the reference


@dataclass(frozen=True)
class FrameGeometry:
    """How the model image relates to the original frame (all sizes in pixels, (width, height) order
    unless named ``_hw``).

    Attributes:
        orig_size: (W, H) of the upright input frame.
        resized_size: (W_r, H_r) after the PIL resize (long side = ``size``).
        crop_box: (left, top, right, bottom) of the centre crop, in resized pixels (integers).
        model_size: (w, h) of the CUT3R tensor (= crop size).
        scale: (W / W_r, H / H_r), original pixels per resized pixel, per axis.
        mhmr_res: side R of the Multi-HMR square.
        mhmr_size_hw: (h', w') of the scaled image inside the square (floored).
        mhmr_pad_tl: (top, left) padding of the square, in square pixels.
    """

    orig_size: tuple[int, int]
    resized_size: tuple[int, int]
    crop_box: tuple[int, int, int, int]
    model_size: tuple[int, int]
    scale: tuple[float, float]
    mhmr_res: int
    mhmr_size_hw: tuple[int, int]
    mhmr_pad_tl: tuple[int, int]

    def model_to_original_xy(self, xy: np.ndarray, pixel_center: float = 0.0) -> np.ndarray:
        """Map pixel positions of the model image to the original frame.

        Args:
            xy: [..., 2] float array of (x, y) = (column, row) positions in model pixels.
            pixel_center: coordinate of the top-left pixel's centre in both frames: 0.0 (OpenCV,
                default) or 0.5 (corner convention). See the module docstring.
        Returns:
            [..., 2] float64 (x, y) in original-frame pixels, same convention.
        """
        xy = np.asarray(xy, dtype=np.float64)
        shift = 0.5 - pixel_center  # convention -> corner convention
        left, top = self.crop_box[0], self.crop_box[1]
        offset = np.array([left, top], dtype=np.float64)
        scale = np.array(self.scale, dtype=np.float64)
        return (xy + shift + offset) * scale - shift

    def original_to_model_xy(self, xy: np.ndarray, pixel_center: float = 0.0) -> np.ndarray:
        """Inverse of `model_to_original_xy` ([..., 2] original pixels -> model pixels, float64)."""
        xy = np.asarray(xy, dtype=np.float64)
        shift = 0.5 - pixel_center
        offset = np.array(self.crop_box[:2], dtype=np.float64)
        scale = np.array(self.scale, dtype=np.float64)
        return (xy + shift) / scale - offset - shift

    def intrinsics_to_original(
        self, fx: float, fy: float, cx: float, cy: float, pixel_center: float = 0.0
    ) -> tuple[float, float, float, float]:
        """Map pinhole intrinsics at model resolution (w x h) to original-frame pixels (W x H).

        Focal lengths scale per axis (fx * W/W_r, fy * H/H_r); the principal point maps like any
        pixel position (`model_to_original_xy`), which accounts for the crop offset. For the
        reference's pp = (w div 2, h div 2) in the OpenCV convention use ``pixel_center=0.0``.

        Returns:
            (fx, fy, cx, cy) in original pixels, floats, same ``pixel_center`` convention.
        """
        sx, sy = self.scale
        cxo, cyo = self.model_to_original_xy(np.array([cx, cy]), pixel_center)
        return float(fx) * sx, float(fy) * sy, float(cxo), float(cyo)

    def mhmr_to_model_xy(self, uv: np.ndarray, pixel_center: float = 0.0) -> np.ndarray:
        """Map positions in the Multi-HMR square (R x R) to model pixels (exact inverse of the pad).

        Unlike the reference's ``unpad_uv`` (which assumes a square of side max(h, w) and clamps),
        this uses the actual floored resize and padding and does not clamp.

        Args:
            uv: [..., 2] (x, y) in square pixels. Returns [..., 2] float64 (x, y) in model pixels.
        """
        uv = np.asarray(uv, dtype=np.float64)
        shift = 0.5 - pixel_center
        top, left = self.mhmr_pad_tl
        nh, nw = self.mhmr_size_hw
        w, h = self.model_size
        # bilinear, align_corners=False: corner-convention coordinates scale by in/out size ratio
        scale = np.array([w / nw, h / nh])
        return (uv + shift - np.array([left, top])) * scale - shift


@dataclass(frozen=True)
class PreparedFrame:
    """Model inputs for one frame plus what is needed to map results back.

    Attributes:
        img: float32 tensor [1, 3, h, w], values in [-1, 1] (CUT3R input, RGB).
        img_mhmr: float32 tensor [1, 3, R, R], values in [-1, 1], padding -1 (Multi-HMR input).
        true_shape: (h, w) of ``img``.
        orig_size: (W, H) of the input frame.
        geometry: resize/crop/pad description and coordinate mapping helpers.
        colors: uint8 [h, w, 3] RGB of the resized, cropped image (``img`` before normalising).
    """

    img: torch.Tensor
    img_mhmr: torch.Tensor
    true_shape: tuple[int, int]
    orig_size: tuple[int, int]
    geometry: FrameGeometry
    colors: np.ndarray


def resized_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(W_r, H_r) of the reference resize: long side -> ``size``, Python (banker's) ``round``."""
    long_side = max(width, height)
    return int(round(width * size / long_side)), int(round(height * size / long_side))


def crop_box(width: int, height: int) -> tuple[int, int, int, int]:
    """Reference centre crop of a (width, height) resized image to multiples of 16.

    A square becomes 4:3 (half-height = 3/4 half-width). Returns integer (left, top, right, bottom)
    rounded like PIL's ``Image.crop`` (Python ``round`` of each coordinate).
    """
    cx, cy = width // 2, height // 2
    half_w = ((2 * cx) // CUT3R_PATCH) * (CUT3R_PATCH // 2)
    half_h = ((2 * cy) // CUT3R_PATCH) * (CUT3R_PATCH // 2)
    if width == height:
        half_h = 3 * half_w / 4
    box = (cx - half_w, cy - half_h, cx + half_w, cy + half_h)
    return tuple(int(round(v)) for v in box)  # type: ignore[return-value]


def mhmr_layout(h: int, w: int, res: int) -> tuple[tuple[int, int], tuple[int, int, int, int]]:
    """Floored scaled size (h', w') and padding (top, bottom, left, right) of the R x R pad."""
    scale = min(res / h, res / w)
    nh, nw = int(h * scale), int(w * scale)
    top, left = (res - nh) // 2, (res - nw) // 2
    return (nh, nw), (top, res - nh - top, left, res - nw - left)


def apply_jpeg_roundtrip(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> np.ndarray:
    """Encode uint8 [H, W, 3] RGB as JPEG (PIL, 4:2:0) and decode it again; returns uint8 [H, W, 3].

    Stands in for the reference's cv2.imwrite + PIL read; close to, not guaranteed identical to, OpenCV.
    """
    buf = io.BytesIO()
    PIL.Image.fromarray(rgb, mode="RGB").save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
    buf.seek(0)
    with PIL.Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def normalize_uint8(rgb: np.ndarray) -> torch.Tensor:
    """uint8 [h, w, 3] -> float32 [1, 3, h, w] as ``(x / 255 - 0.5) / 0.5`` (same op order as the reference)."""
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()
    return t.to(torch.float32).div(255).sub(0.5).div(0.5).unsqueeze(0)


def pad_mhmr(img: torch.Tensor, res: int) -> torch.Tensor:
    """[1, 3, h, w] normalised tensor -> [1, 3, res, res]: bilinear resize (floored size), centred -1 pad."""
    h, w = img.shape[-2:]
    (nh, nw), (top, bottom, left, right) = mhmr_layout(h, w, res)
    scaled = F.interpolate(img, size=(nh, nw), mode="bilinear", align_corners=False)
    return F.pad(scaled, (left, right, top, bottom), mode="constant", value=MHMR_PAD_VALUE)


def frame_size_problem(width: int, height: int, size: int) -> str | None:
    """Why frames of `width` x `height` pixels cannot go through the model at input size `size`, or None.

    The frame is resized to long side `size` and cropped to multiples of the patch size; a strip or
    a tiny image leaves nothing. The message says which sizes would work."""
    new_w, new_h = resized_size(width, height, size)
    box = crop_box(new_w, new_h)
    if box[2] - box[0] > 0 and box[3] - box[1] > 0:
        return None
    short, long_ = min(width, height), max(width, height)
    needed = -(-CUT3R_PATCH * long_ // max(short, 1))  # long side at which the short side reaches one patch
    fix = (f"raise --size to {-(-needed // 16) * 16} or more" if needed <= 4096
           else "crop or pad the video to a less elongated frame")
    return (f"frames of {width}x{height} pixels are too small or too elongated for the model at size {size} "
            f"(resized to {new_w}x{new_h}, less than one {CUT3R_PATCH}-pixel patch on the short side); {fix}")


def prepare_frame_on(device: torch.device | str, rgb: np.ndarray | torch.Tensor, size: int = 512,
                     mhmr_res: int = 896) -> PreparedFrame:
    """`prepare_frame` on a device from uint8, for the fast mode (not reference-exact).

    The uint8 frame goes to the device (1/4 of the float32 bytes) and is resized there with an
    antialiased bicubic filter (PIL uses Lanczos when shrinking), rounded back to uint8 like PIL, then
    cropped, normalised and padded as `prepare_frame` does. A 1080p frame takes ~30 ms on a CPU core
    through PIL; on a GPU this is well under a millisecond. Parity mode keeps `prepare_frame`.

    Nothing here waits for the device. On CUDA every step, the upload included (from page-locked
    memory when `rgb` is a pinned tensor), is queued on the current stream, and `colors` is a numpy
    view of a page-locked buffer that a queued copy fills: read it only once that stream has reached
    this point (the engine reads it after the frame's one result copy, which waits for it).

    Args:
        rgb: uint8 [H, W, 3] RGB, upright (numpy, or a tensor on any device).
    Returns:
        `PreparedFrame` with img/img_mhmr (float32) on `device`; `colors` on the host (numpy uint8).
    Raises:
        ValueError: not a uint8 [H, W, 3] frame, or one too small/elongated for the crop.
    """
    if isinstance(rgb, np.ndarray) and not rgb.flags.writeable:
        rgb = rgb.copy()  # torch refuses to wrap read-only memory without a warning (nothing writes it)
    t = torch.as_tensor(rgb)
    if t.dtype != torch.uint8 or t.ndim != 3 or t.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] array, got {t.dtype} {tuple(t.shape)}")
    height, width = int(t.shape[0]), int(t.shape[1])
    new_w, new_h = resized_size(width, height, size)
    box = crop_box(new_w, new_h)
    w, h = box[2] - box[0], box[3] - box[1]
    if w <= 0 or h <= 0:
        raise ValueError(frame_size_problem(width, height, size))
    chw = t.to(device, non_blocking=True).permute(2, 0, 1)[None].float()
    resized = F.interpolate(chw, size=(new_h, new_w), mode="bicubic", align_corners=False,
                            antialias=max(width, height) > size)
    resized = resized.round_().clamp_(0, 255)  # the uint8 image PIL would hand back
    crop = resized[:, :, box[1]:box[3], box[0]:box[2]]
    img = crop.div(255).sub(0.5).div(0.5)
    img_mhmr = pad_mhmr(img, mhmr_res)
    (nh, nw), (top, _, left, _) = mhmr_layout(h, w, mhmr_res)
    geometry = FrameGeometry(orig_size=(width, height), resized_size=(new_w, new_h), crop_box=box, model_size=(w, h),
                             scale=(width / new_w, height / new_h), mhmr_res=mhmr_res, mhmr_size_hw=(nh, nw),
                             mhmr_pad_tl=(top, left))
    colors = _host_copy_queued(crop[0].permute(1, 2, 0).to(torch.uint8))
    return PreparedFrame(img=img, img_mhmr=img_mhmr, true_shape=(h, w), orig_size=(width, height),
                         geometry=geometry, colors=colors)


def _host_copy_queued(t: torch.Tensor) -> np.ndarray:
    """`t` as host numpy; from CUDA a copy queued on the current stream into page-locked memory."""
    if t.device.type != "cuda":
        return t.cpu().numpy()
    host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    host.copy_(t, non_blocking=True)
    return host.numpy()


def prepare_frame(
    rgb: np.ndarray, size: int = 512, mhmr_res: int = 896, jpeg_roundtrip: bool = False
) -> PreparedFrame:
    """Turn one upright uint8 RGB frame into the model's two input tensors (reference-exact).

    Args:
        rgb: uint8 [H, W, 3] RGB, upright (rotation already applied).
        size: long side of the CUT3R input (512 for the released model). 224 (the reference's
            square-crop special case) is not supported.
        mhmr_res: side of the Multi-HMR square (896 for the released model).
        jpeg_roundtrip: pass the frame through a quality-95 JPEG first, like the reference's video path.
    Returns:
        `PreparedFrame` (tensors on CPU, float32).
    Raises:
        ValueError: bad array, or an image so small/elongated that the crop is empty.
    """
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected a uint8 [H, W, 3] array, got {getattr(rgb, 'dtype', type(rgb))} "
                         f"{getattr(rgb, 'shape', '')}")
    if size == 224:
        raise ValueError("size=224 uses the reference's square-crop branch, which is not implemented")
    if jpeg_roundtrip:
        rgb = apply_jpeg_roundtrip(rgb)
    height, width = rgb.shape[:2]
    image = PIL.Image.fromarray(rgb, mode="RGB")
    new_w, new_h = resized_size(width, height, size)
    resample = PIL.Image.Resampling.LANCZOS if max(width, height) > size else PIL.Image.Resampling.BICUBIC
    image = image.resize((new_w, new_h), resample)
    box = crop_box(new_w, new_h)
    w, h = box[2] - box[0], box[3] - box[1]
    if w <= 0 or h <= 0:
        raise ValueError(f"frame {width}x{height} is too small or too elongated: resized to {new_w}x{new_h}, "
                         f"the crop to multiples of {CUT3R_PATCH} is empty")
    colors = np.array(image.crop(box))  # writable copy
    img = normalize_uint8(colors)
    img_mhmr = pad_mhmr(img, mhmr_res)
    (nh, nw), (top, _, left, _) = mhmr_layout(h, w, mhmr_res)
    geometry = FrameGeometry(
        orig_size=(width, height),
        resized_size=(new_w, new_h),
        crop_box=box,
        model_size=(w, h),
        scale=(width / new_w, height / new_h),
        mhmr_res=mhmr_res,
        mhmr_size_hw=(nh, nw),
        mhmr_pad_tl=(top, left),
    )
    return PreparedFrame(img=img, img_mhmr=img_mhmr, true_shape=(h, w), orig_size=(width, height),
                         geometry=geometry, colors=colors)


@dataclass(frozen=True)
class RawFrame:
    """An upright uint8 frame on its way to preprocessing on the model's device (fast mode on a GPU).

    Attributes:
        rgb: uint8 [H, W, 3] RGB (numpy, or a page-locked tensor ready for an asynchronous upload),
            after the JPEG round trip when the job asks for one.
    """

    rgb: np.ndarray | torch.Tensor

    @property
    def orig_size(self) -> tuple[int, int]:
        """(W, H) of the frame."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


@dataclass(frozen=True)
class PrepareSettings:
    """Arguments of `prepare_frame` besides the frame, for one job (picklable, so a decoding process can
    receive them), and where preprocessing runs.

    Attributes:
        device: None = on the host with `prepare_frame` (reference-exact; the decoding process does it
            all). A device name = the decoder only decodes (and applies the JPEG round trip) and hands
            over a `RawFrame`; `finish` runs `prepare_frame_on` on that device. The engine picks it
            (`Engine.prepare_settings`, by `backend.model.precision.preprocesses_on_device`).
    """

    size: int
    mhmr_res: int
    jpeg_roundtrip: bool = False
    device: str | None = None

    def apply(self, rgb: np.ndarray) -> PreparedFrame:
        """`prepare_frame` of one upright uint8 RGB frame with these settings (always on the host)."""
        return prepare_frame(rgb, self.size, self.mhmr_res, self.jpeg_roundtrip)

    def on_decoder(self, rgb: np.ndarray) -> PreparedFrame | RawFrame:
        """The decoder's share of one upright uint8 frame: all of it (host), or the checks and the JPEG
        round trip (device). Raises the ValueError of a frame the crop leaves empty in both cases."""
        if self.device is None:
            return self.apply(rgb)
        problem = frame_size_problem(rgb.shape[1], rgb.shape[0], self.size)
        if problem:
            raise ValueError(problem)
        return RawFrame(apply_jpeg_roundtrip(rgb) if self.jpeg_roundtrip else rgb)

    def finish(self, item: PreparedFrame | RawFrame) -> PreparedFrame:
        """The model side's share: a `RawFrame` prepared on `device` (queued, see `prepare_frame_on`)."""
        if isinstance(item, RawFrame):
            return prepare_frame_on(self.device or "cpu", item.rgb, self.size, self.mhmr_res)
        return item
