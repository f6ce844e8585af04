"""The one training configuration: every hyperparameter, its default and the reason for it.

The CLI flags, the launcher page's widgets and the ``config.json`` saved beside the weights are
all derived from :class:`TrainConfig`; a model is rebuilt from its saved config. Importing this
module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def _f(default: Any, help: str, choices: tuple | None = None, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, "choices": choices, **kw})


@dataclass
class TrainConfig:
    """Every hyperparameter of a training run."""

    preset: str = _f("vgg_gap", "network (fer.model.PRESETS); vgg_gap gave the best val accuracy "
                     "per CPU-hour", ("seed", "vgg_gap", "vgg_gap_wide", "resnet"))
    data: str = _f("Dataset", "FER2013 folder, zip or fer2013.csv (Kaggle layout train/<class>/)")
    epochs: int = _f(40, "passes over train, cosine decay ending at the last; 40 is a first "
                     "run, the shipped model used 80 then a 40-epoch warm restart (README)",
                     min=1, max=1000)
    batch_size: int = _f(64, "64 is the published recipe and keeps 2 CPU cores busy", min=8,
                         max=1024)
    optimizer: str = _f("adamw", "adamw converges fastest from scratch; sgd (Nesterov) is the "
                        "published 300-epoch recipe", ("adamw", "adam", "sgd"))
    learning_rate: float = _f(2e-3, "peak rate after warm-up", min=1e-6, max=1.0)
    weight_decay: float = _f(0.05, "decoupled weight decay (adamw; sgd uses it as L2)", min=0.0,
                             max=1.0)
    schedule: str = _f("cosine", "cosine decays smoothly to ~0 at the last epoch; plateau "
                       "halves on stalls; cyclic runs a cosine to 1% within every epoch (each "
                       "epoch ends converged, for --average-from)",
                       ("cosine", "plateau", "constant", "cyclic"))
    warmup_epochs: float = _f(2.0, "linear warm-up keeps early large steps from wrecking "
                              "batch-norm statistics", min=0.0, max=50.0)
    label_smoothing: float = _f(0.1, "FER2013 labels are noisy (human accuracy ~65%)", min=0.0,
                                max=0.5)
    augment: float = _f(1.0, "augmentation strength: 1 = +-10 deg rotation, 10% shift/zoom, "
                        "20% contrast; 0 = flips only", min=0.0, max=3.0)
    crop_size: int = _f(40, "train on random crops of this side (48 = none): 30% less compute "
                        "and translation robustness", min=24, max=48)
    erasing: float = _f(0.25, "probability of random erasing (occlusion robustness)", min=0.0,
                        max=1.0)
    robust: float = _f(0.0, "real-photo corruptions (exposure, blur, camera noise, low "
                       "resolution; fer.pipeline.RealPhoto): 1 gave +3.7 points on corrupted "
                       "val faces for -0.5 clean (benchmarks/README.md); 0 = off, as the "
                       "shipped model was trained", min=0.0, max=2.0)
    mixup: float = _f(0.0, "mixup alpha (0 = off); helps long runs, slows short ones", min=0.0,
                      max=2.0)
    dropout: float = _f(0.4, "dropout before the classifier", min=0.0, max=0.9)
    class_weight: str = _f("none", "reweight rare classes (disgust has 436 images): trades "
                           "accuracy for macro-F1", ("none", "balanced", "sqrt"))
    init_from: str = _f("", "start from these weights instead of random ('' = from scratch): a "
                        ".keras file or a run directory's best.keras, for a warm restart or "
                        "fine-tuning; the preset must match its network")
    teacher: str = _f("", "distil from this model ('' = off): a .keras file or a run directory's "
                      "best.keras, or several separated by commas (an ensemble, averaged); its "
                      "ten-crop predictions on train soften the targets")
    distill: float = _f(0.5, "share of each target taken from the teacher's probabilities (the "
                        "rest is the one-hot label); used only with a teacher", min=0.0, max=1.0)
    average_from: int = _f(0, "from this epoch on, average the weights at each epoch's end "
                           "(stochastic weight averaging; pair it with a constant rate) and "
                           "keep the mean if it beats the best epoch on val; 0 = off", min=0,
                           max=1000)
    patience: int = _f(20, "stop after this many epochs without a better val accuracy "
                       "(0 = never)", min=0, max=1000)
    val_fraction: float = _f(0.1, "share of train held out, stratified, for model selection",
                             min=0.01, max=0.5)
    seed: int = _f(42, "seeds the split, the weights and the augmentation", min=0, max=2**31 - 1)
    mixed_precision: str = _f("float32", "mixed_bfloat16 measured no faster on this CPU; "
                              "mixed_float16 helps on GPUs",
                              ("float32", "mixed_bfloat16", "mixed_float16"))
    distribute: str = _f("auto", "auto mirrors across GPUs when there are several; none = "
                         "default device", ("auto", "none", "mirrored"))

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (what ``config.json`` holds)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Builds a config from a dict, ignoring keys it does not know (older or newer files)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names}).validated()

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Reads a ``config.json``."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    @classmethod
    def for_preset(cls, preset: str, **overrides: Any) -> TrainConfig:
        """The preset's own recipe (see :data:`PRESET_RECIPES`), then ``overrides`` on top."""
        return cls(**{"preset": preset, **PRESET_RECIPES.get(preset, {}), **overrides}).validated()

    def validated(self) -> TrainConfig:
        """Checks types, ranges and choices; returns self.

        Raises:
            ValueError: naming the field and what it accepts.
        """
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            want = type(f.default)
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if not isinstance(value, want) or isinstance(value, bool) != (want is bool):
                raise ValueError(f"{f.name} must be {want.__name__}, got {value!r}")
            if meta.get("choices") and value not in meta["choices"]:
                raise ValueError(f"{f.name} must be one of {meta['choices']}, got {value!r}")
            if "min" in meta and not meta["min"] <= value <= meta["max"]:
                raise ValueError(f"{f.name} must be in [{meta['min']}, {meta['max']}], got {value}")
        if self.average_from > self.epochs:
            raise ValueError(f"average_from ({self.average_from}) is after the last epoch "
                             f"({self.epochs})")
        if self.preset == "seed" and self.crop_size != 48:
            raise ValueError("the seed preset takes exactly 48x48 inputs: use crop_size 48")
        return self


# The seed network keeps the original README's recipe: plain Adam at 1e-3, no label smoothing,
# full 48x48 inputs, and the README's light augmentation; plateau halving stands in for its
# manual learning-rate tweaks.
PRESET_RECIPES: dict[str, dict[str, Any]] = {
    "seed": dict(optimizer="adam", learning_rate=1e-3, weight_decay=0.0, schedule="plateau",
                 warmup_epochs=0.0, label_smoothing=0.0, crop_size=48, erasing=0.0, dropout=0.5,
                 epochs=50, patience=10),
}


def config_fields() -> list[dataclasses.Field]:
    """The fields of :class:`TrainConfig` in declaration order (for the CLI and the UI)."""
    return list(dataclasses.fields(TrainConfig))
