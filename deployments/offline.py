"""Keeps Ultralytics and timm off the network. Import this before either of them.

Ultralytics otherwise may pip-install packages, send telemetry, import Ray Tune into training
callbacks, and look for fonts or weights online; timm may reach for the Hugging Face hub.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IN_CHECKOUT = (PROJECT_ROOT / "pyproject.toml").is_file()  # else installed in site-packages

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "false")
os.environ.setdefault("YOLO_VERBOSE", "false")
os.environ.setdefault("YOLO_CONFIG_DIR", str(PROJECT_ROOT / ".ultralytics" if IN_CHECKOUT else user_cache_path("primscene") / "ultralytics"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def configure_ultralytics() -> None:
    """Turn off Ultralytics' settings that reach out (sync, Ray Tune callbacks, hub), and undo
    its global patch of `PIL.Image.open`, which answers an unidentified file by trying to install
    and import a HEIF plugin: our upload checks and model inputs must see Pillow's own errors."""
    from PIL import Image
    from ultralytics import settings
    from ultralytics.utils import patches

    Image.open = patches._image_open

    integrations = ("sync", "raytune", "wandb", "mlflow", "tensorboard", "clearml", "comet", "dvc", "neptune", "hub")
    wanted = {key: False for key in integrations if key in settings}
    if any(settings[key] is not False for key in wanted):
        settings.update(wanted)
