"""The shipped model: its metadata must describe the weights beside it, and its figures must be
reproducible from the dataset."""

import json

import pytest
from conftest import shared_zip_or_skip

from fer.data import CLASSES, load_fer2013
from fer.evaluate import evaluate
from fer.predict import DEFAULT_MODEL, load_model

META = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())


def test_shipped_model_is_small_and_described():
    assert DEFAULT_MODEL.stat().st_size < 20 * 1024**2
    assert META["classes"] == list(CLASSES)
    assert META["input"]["shape"] == [48, 48, 1]
    for key in ("config", "history", "training", "evaluation"):
        assert META[key], key
    ev = META["evaluation"]
    assert ev["n"] == 3589 and len(ev["confusion_matrix"]) == 7
    assert sum(map(sum, ev["confusion_matrix"])) == 3589
    assert ev["tta"]["mode"] in ("flip", "tencrop")
    loaded = load_model()
    assert loaded.model.count_params() == META["params"]


@pytest.mark.fer2013
def test_shipped_accuracy_matches_its_metadata():
    test = load_fer2013(shared_zip_or_skip(), quiet=True)["test"]
    model = load_model().model
    result = evaluate(model, test, tta=META["evaluation"]["tta"]["mode"],
                      crop_size=META["config"]["crop_size"])
    assert result["accuracy"] == pytest.approx(META["evaluation"]["accuracy"], abs=0.005)
    assert result["tta"]["accuracy"] == pytest.approx(META["evaluation"]["tta"]["accuracy"],
                                                      abs=0.005)
    assert result["macro_f1"] == pytest.approx(META["evaluation"]["macro_f1"], abs=0.005)
