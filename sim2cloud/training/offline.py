"""Keeps Ultralytics off the network: no weights, fonts, settings sync or update checks at run time.

Three things would otherwise reach out:
  * ``check_det_dataset`` always calls ``check_font("Arial.ttf")``, which probes and downloads the font from
    GitHub when it is not in Ultralytics' config dir. We give each run its own config dir (``YOLO_CONFIG_DIR``)
    holding matplotlib's bundled DejaVuSans under the names Ultralytics looks for, so the lookup is local.
  * the AMP self-check downloads yolo26n.pt: avoided by ``devices.amp_setting`` (bf16 or off, never fp16 AMP).
  * settings sync / hub events: ``YOLO_OFFLINE=1`` plus ``sync=False`` in the run's settings.
Must run before ``ultralytics`` is first imported (it reads the environment at import time).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
"""Names ``ultralytics.utils.checks.check_font`` resolves (Latin and non-Latin class names)."""


def _bundled_font() -> Path:
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or spec.origin is None:
        raise RuntimeError("matplotlib (an Ultralytics dependency) is not installed: no local font to use")
    return Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"


def prepare_offline_ultralytics(config_dir: Path) -> None:
    """Point Ultralytics at ``config_dir`` with local fonts and offline settings; call before importing it."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    # Ultralytics keeps its settings and fonts in <YOLO_CONFIG_DIR>/Ultralytics.
    user_dir = config_dir / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    font = _bundled_font()
    for name in FONT_NAMES:
        if not (user_dir / name).exists():
            shutil.copyfile(font, user_dir / name)


def disable_settings_sync() -> None:
    """Turn off Ultralytics' anonymous usage sync for this config dir (after import)."""
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
