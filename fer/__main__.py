"""Command line: ``python -m fer {train,evaluate,export,predict,video}``, ``--help`` on each."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out

from fer.config import PRESET_RECIPES, TrainConfig, config_fields  # noqa: E402


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("hyperparameters (fer.config.TrainConfig)")
    for f in config_fields():
        kind = type(f.default)
        flag = "--" + f.name.replace("_", "-")
        help_ = f"{f.metadata['help']} (default: {f.default})".replace("%", "%%")
        group.add_argument(flag, dest=f.name, type=kind, default=None,
                           choices=f.metadata.get("choices"), help=help_)


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    given = {f.name: getattr(args, f.name) for f in config_fields()
             if getattr(args, f.name) is not None}
    if args.config:  # a saved config.json, flags on top
        return TrainConfig.from_dict({**TrainConfig.load(args.config).to_dict(), **given})
    preset = given.pop("preset", TrainConfig.preset)
    return TrainConfig.for_preset(preset, **given)


def cmd_train(args: argparse.Namespace) -> int:
    from fer import checkpoint, runs, train

    if args.resume:
        run_dir = checkpoint.prepare_resume(Path(args.resume), args.run_dir)
        config = TrainConfig.load(run_dir / "config.json")
        overrides = {f.name: getattr(args, f.name) for f in config_fields()
                     if getattr(args, f.name) is not None}
        if overrides:
            config = TrainConfig.from_dict({**config.to_dict(), **overrides})
            runs.write_config(run_dir, config)
        print(f"resuming {run_dir}")
        train.train(config, run_dir, resume=True)
    else:
        config = _config_from_args(args)
        run_dir = train.train(config, Path(args.run_dir) if args.run_dir else None)
    print(f"run directory: {run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from fer.data import load_fer2013
    from fer.evaluate import evaluate, format_report, write_metrics
    from fer.predict import load_model

    loaded = load_model(args.model)
    data = load_fer2013(args.data)
    if args.split == "val":
        # The same seeded split the model was selected on: for choosing e.g. the TTA mode
        # without touching test.
        from fer.data import stratified_split

        config = TrainConfig.from_dict(loaded.meta.get("config", {}))
        data.splits["val"] = stratified_split(data["train"], config.val_fraction, config.seed)[1]
    model = loaded.model
    if args.smoothing:
        from fer.model import with_smoothing

        model = with_smoothing(model, args.smoothing_sigma, args.smoothing)
    result = evaluate(model, data[args.split], tta=args.tta, crop_size=args.crop_size)
    print(format_report(result))
    if args.output:
        write_metrics(Path(args.output), result, split=args.split, model=str(args.model),
                      source=str(args.data))
        print(f"wrote {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from fer import checkpoint

    smoothing = None if args.smoothing is None else (args.smoothing_sigma, args.smoothing)
    out = checkpoint.export_run(Path(args.run_dir), Path(args.output), data=args.data,
                                tta=args.tta, pack=args.checkpoint, smoothing=smoothing,
                                calibrate=args.calibrate)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


def cmd_pack(args: argparse.Namespace) -> int:
    from fer import checkpoint

    run_dir = Path(args.run_dir)
    out = Path(args.output or f"models/checkpoints/{run_dir.name}.ckpt.zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    checkpoint.pack_run(run_dir, out)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); continue it anywhere with "
          f"`python -m fer train --resume {out}`")
    return 0


def _add_smoothing_flags(p: argparse.ArgumentParser, default: float | None = 0.0) -> None:
    p.add_argument("--smoothing", type=float, default=default, metavar="WEIGHT",
                   help="blend each face with its Gaussian blur at inference, this share of the "
                   "blur (0 = off); choose it on --split val (fer.model.Smoothing)")
    p.add_argument("--smoothing-sigma", type=float, default=1.0, metavar="PIXELS",
                   help="the blur's standard deviation (default 1.0)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a model; writes runs/<run-id>/",
                       description="Train a CNN on FER2013. Preset recipes: "
                       + "; ".join(f"{k}: {v}" for k, v in PRESET_RECIPES.items()))
    _add_config_flags(p)
    p.add_argument("--config", help="start from a saved config.json (flags override it)")
    p.add_argument("--run-dir", help="run directory (default: runs/<timestamp>-<preset>)")
    p.add_argument("--resume", metavar="RUN_OR_CHECKPOINT",
                   help="continue a run directory, or a checkpoint .zip from `export --checkpoint`")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="accuracy, macro-F1, per-class report, confusion matrix")
    p.add_argument("--model", default=None, help="a .keras model (default: the shipped model)")
    p.add_argument("--data", required=True, help="FER2013 folder, zip or csv")
    p.add_argument("--split", default="test",
                   help="test, train, or val: the validation split carved from train with the "
                   "model's own val_fraction and seed (default: test)")
    p.add_argument("--tta", default="none", choices=("none", "flip", "tencrop"),
                   help="test-time augmentation; the output states which was used")
    p.add_argument("--crop-size", type=int, default=None, help="tencrop crop side")
    _add_smoothing_flags(p)
    p.add_argument("--output", help="also write the result as JSON here")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="ship a run's best model into models/ with its metadata")
    p.add_argument("run_dir", help="a run directory, or a shipped .keras (with its .json) to "
                   "re-export, e.g. to calibrate it")
    p.add_argument("--output", default="models/fer_vgg.keras", help="the .keras file to write")
    p.add_argument("--data", required=True, help="FER2013 source: val (from train) for the "
                   "temperature, test for the reported figures")
    p.add_argument("--tta", default="flip", choices=("none", "flip", "tencrop"))
    _add_smoothing_flags(p, default=None)
    p.add_argument("--no-calibrate", dest="calibrate", action="store_false",
                   help="do not fit and build in a softmax temperature (fitted on val by "
                   "default)")
    p.add_argument("--checkpoint", action="store_true",
                   help="also pack the run (last.keras, history, config) into <output>.ckpt.zip "
                   "so a later session can resume it")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("pack", help="pack a run's resumable state into one checkpoint zip",
                       description="For a long run that must survive the machine: commit the "
                       "zip (one file, replaced as the run advances) and resume it elsewhere.")
    p.add_argument("run_dir", help="a run directory")
    p.add_argument("--output", help="default: models/checkpoints/<run-id>.ckpt.zip")
    p.set_defaults(func=cmd_pack)

    try:
        from fer.cli_predict import add_predict_parser
    except ImportError:  # predict arrives with fer.predict
        pass
    else:
        add_predict_parser(sub)
    from fer.tflite import add_convert_parser

    add_convert_parser(sub)

    from fer.cli_video import add_video_parser

    add_video_parser(sub)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
