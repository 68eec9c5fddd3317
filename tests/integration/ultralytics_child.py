"""Ultralytics work the integration tests run in a child process, printing one JSON line.

Why a child: importing torch's compiler stack (triton, which ships its own LLVM) into a process that already
holds a Mesa EGL context (llvmpipe's LLVM) crashes it, and pytest-xdist may run a GL test file before a
training test file in the same worker. Production code never mixes them (render and train are separate
processes); the tests keep to the same rule.

    python ultralytics_child.py train DATA_YAML WORK_DIR
        -> {"checked": {nc, names, train, val}, "warnings": [...], "last_pt": "..."}
    python ultralytics_child.py predict MODEL_PT IMGSZ IMAGE...  -> {"predictions": [{boxes, classes, conf}]}
    python ultralytics_child.py val MODEL DATA_YAML IMGSZ RECT  -> {"mAP50": ..., "mAP50-95": ..., "per_class": {..}}
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")  # never try the network (no weights, fonts or hub checks)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def train(data_yaml: str, work: str) -> dict[str, object]:
    """Ultralytics' own dataset checker, then a 1-epoch training from the YAML with warnings collected."""
    from ultralytics import YOLO
    from ultralytics.data.utils import check_det_dataset
    from ultralytics.utils import LOGGER

    data = check_det_dataset(data_yaml, autodownload=False)
    checked = {"nc": data["nc"], "names": data["names"], "train": str(data["train"]), "val": str(data["val"])}

    collected = _Collect()
    LOGGER.addHandler(collected)
    os.chdir(work)
    model = YOLO("yolov8n.yaml")  # architecture only: no weights download
    model.train(
        data=data_yaml, epochs=1, imgsz=160, batch=8, workers=0, device="cpu", plots=False, amp=False, val=True,
        project=str(Path(work) / "runs"), name="smoke", exist_ok=True, verbose=False,
    )  # fmt: skip
    LOGGER.removeHandler(collected)
    last_pt = Path(work) / "runs" / "smoke" / "weights" / "last.pt"
    return {"checked": checked, "warnings": collected.messages, "last_pt": str(last_pt)}


def predict(model_pt: str, imgsz: str, images: list[str]) -> dict[str, object]:
    import numpy as np
    from PIL import Image
    from ultralytics import YOLO

    model = YOLO(model_pt)
    predictions = []
    for path in images:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        bgr = rgb[..., ::-1].copy()
        (result,) = model.predict(bgr, imgsz=int(imgsz), conf=0.001, iou=0.7, max_det=20, verbose=False)
        predictions.append(
            {
                "boxes": result.boxes.xyxy.numpy().tolist(),
                "classes": result.boxes.cls.numpy().astype(int).tolist(),
                "conf": result.boxes.conf.numpy().tolist(),
            }
        )
    return {"predictions": predictions}


def val(model_file: str, data_yaml: str, imgsz: str, rect: str) -> dict[str, object]:
    """Ultralytics' own val with its defaults (conf 0.001, iou 0.7, max_det 300) on any model file it loads;
    ``rect`` true/false is its rect batching (for a .pt it pads each batch by half a stride)."""
    from ultralytics import YOLO

    metrics = YOLO(model_file, task="detect").val(
        data=data_yaml, imgsz=int(imgsz), batch=1, device="cpu", plots=False, verbose=False, workers=0,
        rect=rect == "true",
    )  # fmt: skip
    names = metrics.names
    return {
        "mAP50": float(metrics.box.map50),
        "mAP50-95": float(metrics.box.map),
        "per_class": {
            names[int(c)]: float(ap) for c, ap in zip(metrics.box.ap_class_index, metrics.box.ap50, strict=True)
        },
    }


if __name__ == "__main__":
    command, *rest = sys.argv[1:]
    if command == "train":
        result = train(*rest)
    elif command == "val":
        result = val(*rest)
    else:
        result = predict(rest[0], rest[1], rest[2:])
    print(json.dumps(result))
