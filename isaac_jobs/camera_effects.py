"""Camera effects of a plan's :class:`isaac_jobs.scene.RealismPlan` on a finished RGB image, for every backend.

Defocus is a box blur of the whole frame (as wide as a Gaussian of the planned radius) and motion blur a box
blur along a line (the camera moving during the exposure); both are applied after rendering, so the boxes stay
those of the sharp frame (as Replicator's tight boxes do). Exposure is part of the image jitter (it multiplies
the image brightness) and the JPEG quality is the shard writer's. Frames without defocus or motion blur are
returned as they are, at no cost.
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
        image = image.filter(ImageFilter.BoxBlur(realism.defocus_px * 1.5))
    if realism.motion_blur_px >= 1:
        image = Image.fromarray(_motion_blur(np.asarray(image), realism.motion_blur_px, realism.motion_blur_angle))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def _motion_blur(rgb: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Mean of the image shifted along the blur line (taps about a pixel apart; edges take the nearest pixel)."""
    taps = max(2, round(length) + 1)
    dx, dy = math.cos(angle), math.sin(angle)
    pad = math.ceil(length / 2) + 1
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    height, width = rgb.shape[:2]
    total = np.zeros(rgb.shape, dtype=np.uint16)
    for t in np.linspace(-length / 2, length / 2, taps):
        oy, ox = pad + round(t * dy), pad + round(t * dx)
        total += padded[oy : oy + height, ox : ox + width]
    return (total // taps).astype(np.uint8)
