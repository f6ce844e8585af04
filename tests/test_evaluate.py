"""Metrics against hand-computed values, and TTA views."""

import numpy as np
import pytest

from fer.evaluate import compute_metrics, tta_views


def test_metrics_match_hand_computation():
    labels = np.array([0, 0, 1, 1, 3, 3, 3, 6])
    pred = np.array([0, 1, 1, 1, 3, 3, 0, 6])
    probs = np.eye(7)[pred]
    m = compute_metrics(labels, probs)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["confusion_matrix"][3] == [1, 0, 0, 2, 0, 0, 0]
    angry = m["per_class"]["angry"]
    assert angry["precision"] == pytest.approx(1 / 2) and angry["recall"] == pytest.approx(1 / 2)
    disgust = m["per_class"]["disgust"]
    assert disgust["precision"] == pytest.approx(2 / 3) and disgust["recall"] == 1.0
    assert m["per_class"]["fear"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    f1s = [v["f1"] for v in m["per_class"].values()]
    assert m["macro_f1"] == pytest.approx(np.mean(f1s))


def test_tta_views():
    # Pixel value = 48 * row + column, so each view's corner pixels give its crop offset.
    x = np.arange(2 * 48 * 48, dtype=np.int32).reshape(2, 48, 48) % (48 * 48)
    assert len(tta_views(x, "none")) == 1
    flip = tta_views(x, "flip")
    assert flip[1][0, 0, 0, 0] == 47 and flip[1][0, 0, 47, 0] == 0  # row 0, mirrored
    ten = tta_views(x, "tencrop", crop_size=40)
    assert len(ten) == 10 and all(v.shape == (2, 40, 40, 1) for v in ten)
    # 40-pixel crops of 48: corners at rows/columns 0 and 8, the centre at 4, then mirrors.
    # Top-left pixel of each view, worked out by hand: (row, col) -> 48 * row + col.
    top_left = [0, 8, 8 * 48, 8 * 48 + 8, 4 * 48 + 4,            # (0,0) (0,8) (8,0) (8,8) (4,4)
                39, 47, 8 * 48 + 39, 8 * 48 + 47, 4 * 48 + 43]  # mirrored: last column first
    assert [int(v[1, 0, 0, 0]) for v in ten] == top_left
    bottom_right = [39 * 48 + 39, 39 * 48 + 47, 47 * 48 + 39, 47 * 48 + 47, 43 * 48 + 43]
    assert [int(v[0, 39, 39, 0]) for v in ten[:5]] == bottom_right
    with pytest.raises(ValueError):
        tta_views(x, "bogus")
