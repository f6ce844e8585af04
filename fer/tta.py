"""Test-time augmentation views, shared by evaluation and prediction so that the app averages
exactly the views its reported TTA accuracy was measured with."""

from __future__ import annotations

import numpy as np

TTA_MODES = ("none", "flip", "tencrop")


def tta_views(images: np.ndarray, mode: str, crop_size: int | None = None) -> list[np.ndarray]:
    """The views averaged by test-time augmentation.

    Args:
        images: ``(N, H, W)`` or ``(N, H, W, 1)`` uint8 faces.
        mode: ``none`` (the image), ``flip`` (plus its mirror), or ``tencrop`` (four corner
            crops and the centre crop, each with its mirror).
        crop_size: side of the ``tencrop`` crops (default: 5/6 of the side, 40 for 48).

    Returns:
        A list of arrays shaped like ``images`` (crops are smaller), with a channel axis.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in TTA_MODES:
        raise ValueError(f"unknown TTA mode {mode!r}; choose one of {TTA_MODES}")
    x = images[..., None] if images.ndim == 3 else images
    if mode == "none":
        return [x]
    if mode == "flip":
        return [x, x[:, :, ::-1]]
    h, w = x.shape[1:3]
    c = min(crop_size or round(h * 5 / 6), h, w)
    offsets = [(0, 0), (0, w - c), (h - c, 0), (h - c, w - c), ((h - c) // 2, (w - c) // 2)]
    crops = [x[:, i : i + c, j : j + c] for i, j in offsets]
    return crops + [v[:, :, ::-1] for v in crops]
