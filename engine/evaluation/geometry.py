"""Geometry metrics: IoU of normalized xyxy boxes (MONAI ``box_iou``) and Dice of binary masks (MONAI
``compute_dice``), paper section 4.6 (detection IoU, segmentation Dice)."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import torch
from monai.data.box_utils import box_iou as _box_iou
from monai.metrics import compute_dice

IOU_BACKEND = f"monai {version('monai')} box_iou"
DICE_BACKEND = f"monai {version('monai')} compute_dice"


def box_iou(target: tuple[float, float, float, float], prediction: tuple[float, float, float, float]) -> float:
    """IoU in [0, 1] of two normalized xyxy boxes (``x0 <= x1``, ``y0 <= y1``, image width and height = 1).

    A box shifted right by half its width has IoU 1/3 with the original.

    Raises:
        ValueError: a box does not have 4 finite coordinates or has ``x1 < x0`` / ``y1 < y0``.
    """
    boxes = []
    for name, box in (("target", target), ("prediction", prediction)):
        values = np.asarray(box, dtype=np.float64)
        if values.shape != (4,) or not np.isfinite(values).all():
            raise ValueError(f"{name} box must hold 4 finite numbers (normalized xyxy), got {box!r}")
        if values[2] < values[0] or values[3] < values[1]:
            raise ValueError(f"{name} box {box!r} is not ordered xyxy (x0 <= x1, y0 <= y1)")
        boxes.append(torch.tensor(values[None]))
    return float(_box_iou(boxes[0], boxes[1])[0, 0])


def dice(target: np.ndarray, prediction: np.ndarray) -> float:
    """Dice ``2|A n B| / (|A| + |B|)`` in [0, 1] of two binary masks of one shape (2D ``(H, W)`` or 3D); nonzero is
    foreground. Two empty masks give 1.0 (nothing to find, nothing found).

    Raises:
        ValueError: the shapes differ.
    """
    target, prediction = np.asarray(target) != 0, np.asarray(prediction) != 0
    if target.shape != prediction.shape:
        raise ValueError(f"mask shapes differ: target {target.shape}, prediction {prediction.shape}")
    as_tensor = lambda m: torch.from_numpy(m)[None, None].float()  # (B=1, C=1, ...)
    value = compute_dice(as_tensor(prediction), as_tensor(target), include_background=True, ignore_empty=False)
    return float(value[0, 0])
