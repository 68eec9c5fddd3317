"""The GPU draw of a training batch as one Triton kernel (:func:`draw`), used by ``gpu_augment.draw`` on CUDA.

Each output pixel finds its four bilinear neighbours on the mosaic canvas through the batch's affine warp, reads
each neighbour straight from the source image whose tile covers it (the 114-grey where none does), blends them,
applies the image's HSV gains and writes the pixel: the arithmetic of ``gpu_augment.draw_with_torch`` (the
reference, and the path without Triton or without a GPU), without building the canvas. That path pastes every
tile with its own copy (256 launches for a mosaic batch of 64), converts a canvas four times the output's size
to floats and runs about 70 elementwise HSV kernels over the batch: on an H200 12 ms of GPU time and 12 ms of
Python per batch of 64 at 640 px, beside a training step of about 40 ms of GPU time.

Tested on the CPU with Triton's interpreter (``TRITON_INTERPRET=1``) against the PyTorch path
(tests/unit/yolo/test_gpu_augment.py), and on a GPU by tests/gpu/test_on_gpu.py.
"""

from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from sim2cloud.training.gpu_augment import BORDER_VALUE

BLOCK = 512
"""Output pixels per Triton program."""
TILE_COLUMNS = 7
"""Per tile: source image, canvas y1, y2, x1, x2 (the pasted rectangle), source y1, x1 (its top-left corner)."""
PARAMETER_COLUMNS = 9
"""Per image (``gpu_augment.image_parameters``): output pixel -> canvas pixel (2 x 3 affine, flips folded in),
then the H, S, V gains."""


@triton.jit
def _round_half_even(x):
    nearest = tl.floor(x + 0.5)
    odd = (nearest - 2.0 * tl.floor(nearest * 0.5)) != 0.0
    return tl.where((nearest - x == 0.5) & odd, nearest - 1.0, nearest)


@triton.jit
def _remainder(a, m):
    """Python's (and torch.remainder's) modulo: the result takes the divisor's sign."""
    return a - m * tl.floor(tl.div_rn(a, m))


@triton.jit
def _clamp_byte(x):
    return tl.minimum(tl.maximum(x, 0.0), 255.0)


# Triton compiles a separate kernel for an integer argument equal to 1: one kernel serves 1 and 4 tiles.
@triton.jit(do_not_specialize=["tiles"])
def _draw_kernel(
    store_ptr,
    tiles_ptr,
    parameters_ptr,
    out_ptr,
    total,
    out_h,
    out_w,
    store_h,
    store_w,
    tiles,
    TILE_COLUMNS: tl.constexpr,
    PARAMETER_COLUMNS: tl.constexpr,
    GREY: tl.constexpr,
    HSV: tl.constexpr,
    BLOCK: tl.constexpr,
):
    offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    live = offsets < total
    pixels = out_h * out_w
    image = offsets // pixels
    within = offsets - image * pixels
    row = within // out_w
    column = within - row * out_w
    parameters = parameters_ptr + image * PARAMETER_COLUMNS
    a00 = tl.load(parameters + 0, mask=live, other=0.0)
    a01 = tl.load(parameters + 1, mask=live, other=0.0)
    a02 = tl.load(parameters + 2, mask=live, other=0.0)
    a10 = tl.load(parameters + 3, mask=live, other=0.0)
    a11 = tl.load(parameters + 4, mask=live, other=0.0)
    a12 = tl.load(parameters + 5, mask=live, other=0.0)
    x = column.to(tl.float32)
    y = row.to(tl.float32)
    canvas_x = a00 * x + a01 * y + a02
    canvas_y = a10 * x + a11 * y + a12
    left = tl.floor(canvas_x)
    top = tl.floor(canvas_y)
    fraction_x = canvas_x - left
    fraction_y = canvas_y - top
    left_index = left.to(tl.int32)
    top_index = top.to(tl.int32)
    plane = store_h.to(tl.int64) * store_w
    red = tl.zeros([BLOCK], dtype=tl.float32)
    green = tl.zeros([BLOCK], dtype=tl.float32)
    blue = tl.zeros([BLOCK], dtype=tl.float32)
    # grid_sample's order: top-left, top-right, bottom-left, bottom-right.
    for corner in tl.static_range(4):
        right = corner % 2  # 0 or 1, known when the kernel is compiled
        below = corner // 2
        # Triton resolves these branches when it compiles the kernel (the corner is a compile-time constant).
        if right == 1:  # noqa: SIM108
            weight_x = fraction_x
        else:
            weight_x = 1.0 - fraction_x
        if below == 1:  # noqa: SIM108
            weight_y = fraction_y
        else:
            weight_y = 1.0 - fraction_y
        weight = weight_x * weight_y
        canvas_column = left_index + right
        canvas_row = top_index + below
        found = tl.zeros([BLOCK], dtype=tl.int1)
        source = tl.zeros([BLOCK], dtype=tl.int32)
        source_row = tl.zeros([BLOCK], dtype=tl.int32)
        source_column = tl.zeros([BLOCK], dtype=tl.int32)
        for tile_index in range(tiles):  # a run-time loop: one compiled kernel for mosaics and single images
            tile = tiles_ptr + (image * tiles + tile_index) * TILE_COLUMNS
            tile_source = tl.load(tile + 0, mask=live, other=0)
            y1 = tl.load(tile + 1, mask=live, other=0)
            y2 = tl.load(tile + 2, mask=live, other=0)
            x1 = tl.load(tile + 3, mask=live, other=0)
            x2 = tl.load(tile + 4, mask=live, other=0)
            source_y1 = tl.load(tile + 5, mask=live, other=0)
            source_x1 = tl.load(tile + 6, mask=live, other=0)
            inside = (canvas_row >= y1) & (canvas_row < y2) & (canvas_column >= x1) & (canvas_column < x2)
            found = found | inside
            source = tl.where(inside, tile_source, source)
            source_row = tl.where(inside, canvas_row - y1 + source_y1, source_row)
            source_column = tl.where(inside, canvas_column - x1 + source_x1, source_column)
        read = live & found
        address = store_ptr + (source.to(tl.int64) * 3 * plane + source_row.to(tl.int64) * store_w + source_column)
        red += weight * (tl.load(address, mask=read, other=GREY).to(tl.float32) - GREY)
        green += weight * (tl.load(address + plane, mask=read, other=GREY).to(tl.float32) - GREY)
        blue += weight * (tl.load(address + 2 * plane, mask=read, other=GREY).to(tl.float32) - GREY)
    red = _clamp_byte(_round_half_even(red + GREY))
    green = _clamp_byte(_round_half_even(green + GREY))
    blue = _clamp_byte(_round_half_even(blue + GREY))
    if HSV:
        hue_gain = tl.load(parameters + 6, mask=live, other=0.0)
        saturation_gain = tl.load(parameters + 7, mask=live, other=0.0)
        value_gain = tl.load(parameters + 8, mask=live, other=0.0)
        # OpenCV's 8-bit RGB -> HSV (H in [0, 180)), as gpu_augment._rgb_to_hsv.
        value = tl.maximum(tl.maximum(red, green), blue)
        low = tl.minimum(tl.minimum(red, green), blue)
        delta = value - low
        saturation = tl.where(value > 0, tl.div_rn(delta * 255.0, tl.maximum(value, 1e-6)), 0.0)
        safe = tl.maximum(delta, 1e-6)
        hue_from_green = 120.0 + tl.div_rn(60.0 * (blue - red), safe)
        hue_from_blue = 240.0 + tl.div_rn(60.0 * (red - green), safe)
        hue_from_red = tl.div_rn(60.0 * (green - blue), safe)
        hue = tl.where(value == red, hue_from_red, tl.where(value == green, hue_from_green, hue_from_blue))
        hue = _remainder(tl.where(delta > 0, hue, 0.0), 360.0)
        hue = _remainder(_round_half_even(hue * 0.5), 180.0)
        saturation_byte = _round_half_even(saturation)
        # RandomHSV's lookup tables, as gpu_augment.random_hsv.
        new_hue = tl.floor(_remainder(hue + hue_gain * 180.0, 180.0))
        new_saturation = tl.floor(_clamp_byte(saturation_byte * (saturation_gain + 1.0)))
        new_saturation = tl.where(saturation_byte == 0, 0.0, new_saturation)
        new_value = tl.floor(_clamp_byte(value * (value_gain + 1.0)))
        # HSV -> RGB, as gpu_augment._hsv_to_rgb.
        h = _remainder(tl.div_rn(new_hue * 2.0, 60.0), 6.0)
        chroma = tl.div_rn(new_value * new_saturation, 255.0)
        second = chroma * (1.0 - tl.abs(_remainder(h, 2.0) - 1.0))
        sector = tl.floor(h)
        new_red = tl.where((sector == 0) | (sector == 5), chroma, tl.where((sector == 1) | (sector == 4), second, 0.0))
        new_green = tl.where(
            (sector == 1) | (sector == 2), chroma, tl.where((sector == 0) | (sector == 3), second, 0.0)
        )
        new_blue = tl.where((sector == 3) | (sector == 4), chroma, tl.where((sector == 2) | (sector == 5), second, 0.0))
        base = new_value - chroma
        untouched = (hue_gain == 0.0) & (saturation_gain == 0.0) & (value_gain == 0.0)
        red = tl.where(untouched, red, _clamp_byte(_round_half_even(new_red + base)))
        green = tl.where(untouched, green, _clamp_byte(_round_half_even(new_green + base)))
        blue = tl.where(untouched, blue, _clamp_byte(_round_half_even(new_blue + base)))
    out = out_ptr + image * 3 * pixels + within
    tl.store(out, red, mask=live)
    tl.store(out + pixels, green, mask=live)
    tl.store(out + 2 * pixels, blue, mask=live)


def tile_table(pastes: np.ndarray, batch: int) -> np.ndarray:
    """``BatchPlan.pastes`` [K, 10] as int32 [B, T, 7] (T = most tiles of one image; unused rows are empty)."""
    images = pastes[:, 0]
    counts = np.bincount(images, minlength=batch)
    table = np.zeros((batch, max(int(counts.max(initial=0)), 1), TILE_COLUMNS), dtype=np.int32)
    # Each paste's place among its image's tiles, keeping their order (a stable sort groups them by image).
    order = np.argsort(images, kind="stable")
    first_of_image = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(pastes), dtype=np.int64)
    rank[order] = np.arange(len(pastes)) - first_of_image[images[order]]
    # source, canvas y1, y2, x1, x2, source y1, x1 (the source's y2 and x2 follow from the rectangle's size)
    table[images, rank] = pastes[:, [1, 2, 3, 4, 5, 6, 8]]
    return table


def draw(
    store: torch.Tensor, tiles: torch.Tensor, parameters: torch.Tensor, output_hw: tuple[int, int], hsv: bool
) -> torch.Tensor:
    """The batch as float 0-255 RGB [B, 3, H, W] on the store's device.

    ``store``: uint8 [N, 3, h, w] source images; ``tiles``: int32 [B, T, 7] (:func:`tile_table`);
    ``parameters``: float32 [B, 9]; ``hsv``: whether any image has HSV gains.
    """
    batch, tiles_per_image = int(tiles.shape[0]), int(tiles.shape[1])
    out_h, out_w = output_hw
    out = torch.empty((batch, 3, out_h, out_w), dtype=torch.float32, device=store.device)
    total = batch * out_h * out_w
    _draw_kernel[(triton.cdiv(total, BLOCK),)](
        store,
        tiles,
        parameters,
        out,
        total,
        out_h,
        out_w,
        int(store.shape[2]),
        int(store.shape[3]),
        tiles_per_image,
        TILE_COLUMNS=TILE_COLUMNS,
        PARAMETER_COLUMNS=PARAMETER_COLUMNS,
        GREY=BORDER_VALUE,
        HSV=hsv,
        BLOCK=BLOCK,
    )
    return out
