"""A preview picture: a grid of dataset frames with their boxes and class names drawn (PNG)."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

from sim2cloud import contract

PREVIEW_NAME = "preview.png"


def class_color(class_id: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def read_yolo_labels(label_path: Path, width: int, height: int) -> list[tuple[int, float, float, float, float]]:
    """Pixel boxes (class, x_min, y_min, x_max, y_max) from a YOLO label file (missing file = no boxes)."""
    boxes: list[tuple[int, float, float, float, float]] = []
    if not label_path.is_file():
        return boxes
    for line in label_path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) != 5:
            continue
        class_id, cx, cy, w, h = int(parts[0]), *(float(v) for v in parts[1:])
        boxes.append(
            (class_id, (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
        )
    return boxes


def write_preview(
    dataset_dir: Path,
    class_names: Sequence[str],
    out_path: Path | None = None,
    *,
    count: int = 16,
    tile: int = 256,
) -> Path:
    """Draw up to ``count`` frames (train then val, by name) as a grid of ``tile``-pixel tiles; returns the path."""
    from PIL import Image, ImageDraw, ImageFont

    dataset_dir = Path(dataset_dir)
    pairs: list[tuple[Path, Path]] = []
    for split in contract.SPLITS:
        images = sorted((dataset_dir / contract.IMAGES_DIR / split).glob("*"))
        pairs += [(p, dataset_dir / contract.LABELS_DIR / split / (p.stem + ".txt")) for p in images]
    pairs = pairs[:count]
    if not pairs:
        raise FileNotFoundError(f"{dataset_dir}: no images to preview")
    columns = min(4, len(pairs))
    rows = (len(pairs) + columns - 1) // columns
    grid = Image.new("RGB", (columns * tile, rows * tile), (32, 32, 32))
    font = ImageFont.load_default()  # the bundled bitmap font: nothing is downloaded
    for index, (image_path, label_path) in enumerate(pairs):
        with Image.open(image_path) as opened:
            image = opened.convert("RGB")
        scale = tile / max(image.size)
        boxes = read_yolo_labels(label_path, *image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
        draw = ImageDraw.Draw(image)
        for class_id, x0, y0, x1, y1 in boxes:
            color = class_color(class_id)
            name = class_names[class_id] if 0 <= class_id < len(class_names) else str(class_id)
            draw.rectangle((x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1), outline=color, width=2)
            text_box = draw.textbbox((x0 * scale + 2, y0 * scale + 1), name, font=font)
            draw.rectangle(text_box, fill=color)
            draw.text((x0 * scale + 2, y0 * scale + 1), name, fill=(0, 0, 0), font=font)
        draw.text((3, image.height - 12), image_path.stem, fill=(255, 255, 255), font=font)
        grid.paste(image, ((index % columns) * tile, (index // columns) * tile))
    out_path = Path(out_path) if out_path is not None else dataset_dir / PREVIEW_NAME
    grid.save(out_path)
    return out_path
