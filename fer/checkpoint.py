"""Shipping a run into ``models/`` and carrying a run across machines as one checkpoint file.

``export_run`` writes ``models/<name>.keras`` (the best weights, no optimizer state) and
``models/<name>.json`` (classes, input spec, config, history, machine and wall time, and the
test evaluation it computes itself). With ``pack=True`` it also writes ``<name>.ckpt.zip``:
the run's ``last.keras`` (with optimizer state), ``best.keras``, ``history.csv``,
``config.json``, ``status.json`` and a distilled run's ``teacher_probs.npz``, which
``python -m fer train --resume <zip>`` continues on any machine.
"""

from __future__ import annotations

import os
import platform
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fer import runs
from fer.atomic import atomic_write
from fer.data import CLASSES, DatasetError, check_zip

PACKED = ("config.json", "history.csv", "status.json", "last.keras", "best.keras",
          "teacher_probs.npz",  # only for a distilled run (fer.teachers)
          "average.npz")  # only for a run that averages its weights (fer.averaging)


def pack_run(run_dir: Path, out: Path) -> Path:
    """Packs a run's resumable state into one zip, written atomically."""
    import tempfile

    def write(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf, \
                tempfile.TemporaryDirectory() as scratch:
            for name in PACKED:
                path = run_dir / name
                if path.exists() and name == "best.keras":
                    # Only last.keras needs optimizer state; the best weights alone keep the
                    # checkpoint under the repository's 25 MB file budget.
                    path = _weights_only(run_dir, path, Path(scratch) / "best.keras")
                if path.exists():
                    zf.write(path, name)

    return atomic_write(out, write)


def _weights_only(run_dir: Path, src: Path, dest: Path) -> Path:
    import keras

    from fer.config import TrainConfig
    from fer.model import build_model

    config = TrainConfig.load(run_dir / "config.json")
    model = build_model(config.preset, dropout=config.dropout)
    model.set_weights(keras.models.load_model(src, compile=False).get_weights())
    model.save(dest)
    return dest


def prepare_resume(source: Path, run_dir: str | os.PathLike | None = None) -> Path:
    """Returns the run directory to resume: ``source`` itself, or a checkpoint zip unpacked.

    Args:
        source: a run directory, or a ``.ckpt.zip`` from :func:`pack_run`.
        run_dir: where to unpack a zip (default: ``runs/<zip stem>``); an existing run
            directory there with more epochs recorded is kept rather than overwritten.

    Raises:
        FileNotFoundError: nothing at ``source``.
        DatasetError: the zip is not a checkpoint or is unsafe.
    """
    if source.is_dir():
        if not (source / "config.json").exists():
            raise FileNotFoundError(f"{source} has no config.json: not a run directory")
        return source
    if not source.exists():
        raise FileNotFoundError(f"no run directory or checkpoint at {source}")
    target = Path(run_dir) if run_dir else runs.RUNS_DIR / source.name.split(".")[0]
    with check_zip(source) as zf:
        names = set(zf.namelist())
        if not {"config.json", "last.keras"} <= names or not names <= set(PACKED):
            raise DatasetError(f"{source} is not a training checkpoint (has {sorted(names)})")
        if (target / "history.csv").exists():
            here = len(runs.read_history(target / "history.csv"))
            packed = len(runs.read_history(_extract_text(zf, "history.csv", target)))
            if here >= packed:
                return target  # the local run is at least as far along
        target.mkdir(parents=True, exist_ok=True)
        for name in names:
            atomic_write(target / name, zf.read(name))
    return target


def _extract_text(zf: zipfile.ZipFile, name: str, where: Path) -> Path:
    return atomic_write(where / f".packed-{name}", zf.read(name) if name in zf.namelist()
                        else b"")


def _train_command(config, run_dir: Path | None = None) -> str:
    """The CLI call that reproduces a config: the preset plus every field that differs."""
    from fer.config import TrainConfig

    base = TrainConfig.for_preset(config.preset).to_dict()
    flags = [f"--{k.replace('_', '-')} {v}" for k, v in config.to_dict().items()
             if k not in ("preset", "data") and v != base[k]]
    if run_dir is not None:  # a later stage's init_from names this directory
        flags.append(f"--run-dir {run_dir}")
    return " ".join(["python -m fer train --preset", config.preset, *flags,
                     "--data <fer2013.zip>"])


def _lineage(run_dir: Path) -> list[tuple[Path, Any, list[dict[str, float]]]]:
    """The run and the runs it started from (``init_from``), oldest first, as (dir, config,
    history); a chain stops at weights that are not a run directory."""
    from fer.config import TrainConfig

    chain, seen = [], set()
    while run_dir is not None and (run_dir / "config.json").exists():
        if run_dir.resolve() in seen:
            break
        seen.add(run_dir.resolve())
        config = TrainConfig.load(run_dir / "config.json")
        chain.append((run_dir, config, runs.read_history(run_dir / "history.csv")))
        parent = Path(config.init_from) if config.init_from else None
        run_dir = parent.parent if parent is not None and parent.suffix == ".keras" else parent
    return chain[::-1]


def _shipped_origin(init_from: str) -> tuple[list[dict[str, Any]], list[dict[str, float]]]:
    """The stages and history of a shipped model a lineage starts from (its ``.json`` holds
    them; its run directory may be long gone), or nothing for any other start."""
    if not init_from.endswith(".keras"):
        return [], []
    meta = runs.read_json(Path(init_from).with_suffix(".json"))
    if not isinstance(meta, dict) or not isinstance(meta.get("training"), dict):
        return [], []
    return list(meta["training"].get("stages") or []), list(meta.get("history") or [])


def _training_record(run_dir: Path) -> tuple[Any, dict[str, Any], list[dict[str, float]]]:
    """A run directory's config, the json's ``training`` block and its whole history."""
    from fer.config import TrainConfig

    config = TrainConfig.load(run_dir / "config.json")
    # A warm restart or fine-tune reports its whole lineage: one history, epochs numbered on.
    chain = _lineage(run_dir)
    stages, history = _shipped_origin(chain[0][1].init_from)
    for stage_dir, stage_config, stage_history in chain:
        offset = len(history)
        history += [{**r, "epoch": offset + int(r["epoch"])} for r in stage_history]
        stages.append({
            "run": stage_dir.name,
            "epochs": len(stage_history),
            "wall_seconds": round(sum(r.get("seconds", 0.0) for r in stage_history), 1),
            "command": _train_command(stage_config, stage_dir if stage_dir != run_dir else None),
            "config": stage_config.to_dict(),
        })
    own = len(runs.read_history(run_dir / "history.csv"))
    status = runs.read_json(run_dir / "status.json", {}) or {}
    # best.keras is this run's best epoch (its val accuracy, not an earlier stage's).
    best_epoch = (max(history[len(history) - own:], key=lambda r: r.get("val_accuracy", -1))
                  ["epoch"] if own else None)
    training = {
        "state": status.get("state"),
        "epochs_done": len(history),
        "best_epoch": int(best_epoch) if best_epoch else None,
        "wall_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
        "machine": {"cpu": status.get("cpu") or runs.cpu_name(),
                    "cores": status.get("cores") or os.cpu_count(),
                    "platform": platform.platform(), "gpu": "none"},
        "command": " && ".join(stage["command"] for stage in stages),
        "stages": stages,
    }
    if status.get("average"):
        # best.keras may be the mean of several epochs' weights rather than best_epoch's.
        training["weight_average"] = status["average"]
    return config, training, history


def _source(source: Path) -> tuple[Any, Path, dict[str, Any], list[dict[str, float]], dict]:
    """What an export starts from: a run directory, or an already shipped ``.keras`` whose
    ``.json`` carries its config and training record (to re-export it, e.g. to calibrate it,
    on a machine that no longer has its run directory)."""
    from fer.config import TrainConfig

    if source.suffix == ".keras":
        meta = runs.read_json(source.with_suffix(".json"))
        if not meta or "config" not in meta:
            raise FileNotFoundError(f"{source.name} has no {source.stem}.json with its config: "
                                    "export a run directory instead")
        return (TrainConfig.from_dict(meta["config"]), source, meta.get("training") or {},
                meta.get("history") or [], meta)
    if not (source / "best.keras").exists():
        raise FileNotFoundError(f"{source} has no best.keras: not a finished run directory")
    config, training, history = _training_record(source)
    return config, source / "best.keras", training, history, {}


def export_run(
    run_dir: Path, output: Path, *, data: str, tta: str = "flip", pack: bool = False,
    smoothing: tuple[float, float] | None = None, calibrate: bool = True,
) -> Path:
    """Ships a run's best model with metadata computed here, never typed by hand.

    Args:
        run_dir: a run directory with ``best.keras``, or a shipped ``.keras`` with its
            ``.json`` (re-export).
        output: the ``.keras`` file to write (its ``.json`` goes beside it).
        data: the FER2013 source: its ``train`` split gives the run's own seeded validation
            split (for the temperature), its ``test`` split the reported figures.
        tta: the TTA mode reported next to the plain figures.
        pack: also write ``<output stem>.ckpt.zip`` for resuming elsewhere.
        smoothing: ``(sigma, weight)`` of an inference-only blur built into the shipped model
            (:class:`fer.model.Smoothing`; weight 0 = none), chosen on the val split; None
            keeps a shipped source's own setting (none for a run directory).
        calibrate: fit a softmax temperature on the val split (no TTA, minimum NLL) and build
            it into the model (:class:`fer.model.Calibration`).

    Returns:
        The path of the written model.
    """
    import keras

    from fer import calibration
    from fer.data import load_fer2013, stratified_split
    from fer.evaluate import evaluate, predict_probs
    from fer.model import build_model

    config, weights, training, history, source_meta = _source(Path(run_dir))
    if smoothing is None and source_meta.get("smoothing"):
        smoothing = (source_meta["smoothing"]["sigma"], source_meta["smoothing"]["weight"])
    smoothing = smoothing if smoothing and smoothing[1] > 0 else None
    trained = keras.models.load_model(weights, compile=False).get_weights()

    def rebuilt(temperature: float | None = None) -> keras.Model:
        # Rebuilt from the saved config and saved uncompiled: no optimizer state.
        model = build_model(config.preset, dropout=config.dropout, smoothing=smoothing,
                            temperature=temperature)
        model.set_weights(trained)
        return model

    dataset = load_fer2013(data, quiet=True)
    val = stratified_split(dataset["train"], config.val_fraction, config.seed)[1]
    raw = rebuilt()
    temperature = None
    if calibrate:
        temperature = calibration.fit_temperature(val.labels, predict_probs(raw, val.images))
    model = rebuilt(temperature)
    crop = config.crop_size
    evaluations = {"val": evaluate(model, val, tta=tta, crop_size=crop),
                   "test": evaluate(model, dataset["test"], tta=tta, crop_size=crop)}
    cal_block = None
    if calibrate:
        before = {"val": evaluate(raw, val, tta=tta, crop_size=crop),
                  "test": evaluate(raw, dataset["test"], tta=tta, crop_size=crop)}

        def pair(split: str, mode: str) -> dict[str, Any]:
            b, a = before[split], evaluations[split]
            if mode != "none":
                b, a = b["tta"], a["tta"]
            keys = ("ece", "nll", "accuracy")
            return {"before": {k: b[k] for k in keys}, "after": {k: a[k] for k in keys}}

        for split in ("val", "test"):
            # Beside the shipped figures, for the dashboard's before/after reliability diagram.
            evaluations[split]["temperature"] = temperature
            evaluations[split]["uncalibrated"] = {k: before[split][k]
                                                  for k in ("ece", "nll", "reliability")}
        modes = ["none"] + ([tta] if tta != "none" else [])
        cal_block = {
            "temperature": temperature,
            "method": "temperature scaling: softmax(log p / T), one T fitted on the val split "
                      "without TTA by minimum NLL; ECE over 15 equal-width bins of top-1 "
                      "probability",
            "fitted_on": f"val ({len(val.labels)} faces: the run's own seeded split of train)",
            **{split: {mode: pair(split, mode) for mode in modes} for split in ("val", "test")},
        }
    flags = f" --tta {tta}" + (f" --smoothing {smoothing[1]} --smoothing-sigma {smoothing[0]}"
                               if smoothing else " --smoothing 0")
    flags += "" if calibrate else " --no-calibrate"
    command = f"python -m fer export {run_dir} --data {data}{flags}"
    meta: dict[str, Any] = {
        "name": output.stem,
        "classes": list(CLASSES),
        "input": {"shape": [48, 48, 1], "dtype": "uint8", "color": "grayscale",
                  "note": "raw 0-255 pixels of a tight square face crop; Rescaling is inside"},
        "smoothing": ({"sigma": smoothing[0], "weight": smoothing[1],
                       "note": "inference-only blur inside the model (fer.model.Smoothing)"}
                      if smoothing else None),
        "calibration": cal_block,
        "params": int(model.count_params()),
        "config": config.to_dict(),
        "training": training,
        "history": history,
        "validation": {"split": f"val ({len(val.labels)} faces, seed {config.seed})",
                       "command": command, **evaluations["val"]},
        "evaluation": {"split": "test (PublicTest)", "source": Path(data).name,
                       "command": command,
                       "evaluated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                       **evaluations["test"]},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(output, model.save, suffix=".keras")
    runs.atomic_write_json(output.with_suffix(".json"), meta)
    from fer.tflite import convert

    convert(output, data=data)  # the .tflite the app serves, its counts in the .json
    if pack:
        if Path(run_dir).suffix == ".keras":
            raise ValueError("--checkpoint packs a run directory, not a shipped model")
        pack_run(run_dir, output.with_name(output.stem + ".ckpt.zip"))
    return output
