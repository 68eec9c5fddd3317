"""Camera effects of a plan's :class:`isaac_jobs.scene.RealismPlan` on a finished RGB image, for every backend.

Defocus is a box blur of the whole frame (as wide as a Gaussian of the planned radius) and motion blur a box
blur along a line (the camera moving during the exposure); both are applied after rendering, so the boxes stay
those of the sharp frame (as Replicator's tight boxes do). Exposure is part of the image jitter (it multiplies
the image brightness) and the JPEG quality is the shard writer's. Frames without defocus or motion blur are
returned as they are, at no cost.

These are the numpy/PIL formulas the isaac backend applies to Replicator's frames; the GL backend runs the same
effects as shader passes on the GPU before its readback (``isaac_jobs.backends.gl_effects``), from the same
box radius (:func:`defocus_box_radius`) and the same motion-blur taps (:func:`motion_blur_offsets`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from isaac_jobs.scene import RealismPlan


def apply_camera_effects(rgb: np.ndarray, realism: RealismPlan) -> np.ndarray:
    if realism.defocus_px <= 0 and realism.motion_blur_px < 1:
        return rgb
    from PIL import Image, ImageFilter

    image = Image.fromarray(rgb, "RGB")
    if realism.defocus_px > 0:
        # A box blur (one separable pass) of the same spread as a Gaussian of this radius: a third of the cost.
        image = image.filter(ImageFilter.BoxBlur(defocus_box_radius(realism.defocus_px)))
    if realism.motion_blur_px >= 1:
        image = Image.fromarray(_motion_blur(np.asarray(image), realism.motion_blur_px, realism.motion_blur_angle))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def defocus_box_radius(defocus_px: float) -> float:
    """The box-blur radius (pixels, fractional) of a defocus of this Gaussian radius."""
    return defocus_px * 1.5


def motion_blur_offsets(length: float, angle: float) -> list[tuple[int, int]]:
    """(dy, dx) pixel offsets of the motion-blur taps: about a pixel apart along the blur line, centred."""
    taps = max(2, round(length) + 1)
    dx, dy = math.cos(angle), math.sin(angle)
    return [(round(float(t) * dy), round(float(t) * dx)) for t in np.linspace(-length / 2, length / 2, taps)]


def _motion_blur(rgb: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Mean of the image shifted along the blur line (rounded down; edges take the nearest pixel)."""
    offsets = motion_blur_offsets(length, angle)
    pad = math.ceil(length / 2) + 1
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    height, width = rgb.shape[:2]
    total = np.zeros(rgb.shape, dtype=np.uint16)
    for dy, dx in offsets:
        total += padded[pad + dy : pad + dy + height, pad + dx : pad + dx + width]
    return (total // len(offsets)).astype(np.uint8)
