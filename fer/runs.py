"""Run directories on disk: atomic writes, status records, and listing runs for the UI.

A run lives in ``runs/<run-id>/`` with ``config.json``, ``status.json``, ``history.csv``,
``best.keras``, ``last.keras``, ``metrics.json`` and ``train.log``; the launcher adds
``process.json`` (the training process it started). Every file is written with
:func:`fer.atomic.atomic_write`, so a reader (the dashboard) never sees half a file.

A live run is identified by its process id *and* that process's start time: after a restart a
recycled pid belongs to a process that started later, and a crashed trainer that nobody reaped
(a zombie) no longer counts. Nothing here imports TensorFlow: the UI lists and reads runs
without loading it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from fer.atomic import atomic_write
from fer.config import TrainConfig
from fer.data import CLASSES

RUNS_DIR = Path(os.environ.get("FER_RUNS_DIR", Path(__file__).resolve().parent.parent / "runs"))
STATUSES = ("queued", "running", "finished", "failed", "stopped")
HISTORY_FIELDS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
STOP_FILE = "STOP"
PROCESS_FILE = "process.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (:func:`fer.atomic.atomic_write`)."""
    atomic_write(path, text)


def atomic_write_json(path: Path, data: Any) -> None:
    """Writes ``data`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def new_run_dir(config: TrainConfig, runs_dir: Path | None = None) -> Path:
    """A fresh, unique ``runs/<timestamp>-<preset>`` directory."""
    root = Path(runs_dir or RUNS_DIR)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for i in range(100):
        path = root / (f"{stamp}-{config.preset}" + (f"-{i}" if i else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a run directory under {root}")


def write_config(run_dir: Path, config: TrainConfig) -> None:
    """Writes ``config.json``; the class order rides along so ``best.keras`` can serve directly."""
    atomic_write_json(Path(run_dir) / "config.json", {**config.to_dict(), "classes": list(CLASSES)})


def init_weights(init_from: str, field: str = "init_from") -> Path:
    """The ``.keras`` file that ``TrainConfig.init_from`` (or ``teacher``) names.

    Args:
        init_from: a ``.keras`` file, or a run directory (its ``best.keras``).
        field: the config field it came from, for the error message.

    Raises:
        FileNotFoundError: with a message saying what was looked for.
    """
    path = Path(init_from).expanduser()
    if path.is_dir():
        path = path / "best.keras"
    if path.suffix != ".keras" or not path.is_file():
        raise FileNotFoundError(f"{field}: no .keras weights at {path} (give a .keras file or "
                                "a run directory with best.keras)")
    return path


def teacher_weights(teacher: str) -> list[Path]:
    """The ``.keras`` files that ``TrainConfig.teacher`` names: one, or several separated by
    commas (an ensemble, whose averaged probabilities the student learns).

    Raises:
        FileNotFoundError: naming the first one missing.
    """
    return [init_weights(t.strip(), "teacher") for t in teacher.split(",") if t.strip()]


def warn_if_other_split(weights: Path, config: TrainConfig, field: str) -> None:
    """Logs a warning when ``weights`` (an ``init_from`` or a teacher) came from a run whose
    train/val split differs from ``config``'s: its training faces are then in this run's val."""
    parent = read_json(weights.parent / "config.json") or {}
    if parent and (parent.get("seed"), parent.get("val_fraction")) != (
            config.seed, config.val_fraction):
        logging.getLogger("fer.runs").warning(
            "%s was trained with seed %s / val_fraction %s: this run's val accuracy is "
            "optimistic", field, parent.get("seed"), parent.get("val_fraction"))


def init_preset(weights: Path) -> str | None:
    """The preset that trained ``weights``, from its run's ``config.json`` or its ``.json``
    metadata (None when neither says), so a mismatch is caught without loading TensorFlow."""
    for meta in (weights.parent / "config.json", weights.with_suffix(".json")):
        data = read_json(meta) or {}
        preset = data.get("preset") or (data.get("config") or {}).get("preset")
        if preset:
            return preset
    return None


def init_weight_options(models_dir: Path, runs_dir: Path | None = None) -> list[str]:
    """Weights a new run can start from: shipped models, then runs' ``best.keras``, newest
    first."""
    found = sorted(Path(models_dir).glob("*.keras"))
    found += sorted(Path(runs_dir or RUNS_DIR).glob("*/best.keras"),
                    key=lambda p: p.stat().st_mtime, reverse=True)
    return [str(p) for p in found]


def read_json(path: Path, default: Any = None) -> Any:
    """Reads JSON, or returns ``default`` when the file is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def read_history(path: Path) -> list[dict[str, float]]:
    """Reads ``history.csv`` rows as floats (missing file: no rows)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows.append({k: float(v) for k, v in row.items() if v not in (None, "")})
        except ValueError:
            continue
    return rows


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    """Rewrites ``history.csv`` atomically with the standard columns."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        values = {k: row.get(k, "") for k in HISTORY_FIELDS}
        values["epoch"] = int(values["epoch"]) if values["epoch"] != "" else ""
        writer.writerow(values)
    atomic_write_text(path, buf.getvalue())


def write_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    """Updates ``status.json``, keeping earlier fields (timestamps, pid) unless overridden."""
    assert state in STATUSES, state
    path = Path(run_dir) / "status.json"
    status = read_json(path, {}) or {}
    status.update(fields, state=state, updated=time.time())
    status.setdefault("created", status["updated"])
    atomic_write_json(path, status)
    return status


def time_left(status: dict[str, Any]) -> str:
    """The time left of a running run, in words, from its status (e.g. "about 12 min left")."""
    eta = status.get("eta_seconds")
    if status.get("state") == "queued":
        return "starting the training process"
    if eta is None:
        return "time left known after the first epoch"
    if eta < 90:
        return f"about {max(round(eta), 1)} s left" if eta >= 1 else "finishing"
    minutes = round(eta / 60)
    if minutes < 90:
        return f"about {minutes} min left"
    return f"about {minutes // 60} h {minutes % 60:02d} min left"


def test_set_label(metrics: dict[str, Any]) -> str:
    """What a run's test figures were computed on, e.g. "3,589 test images (FER2013
    PublicTest)" for the real split, "28 test images from toy.zip" otherwise."""
    n = metrics.get("n", 0)
    source = Path(str(metrics.get("source") or "")).name
    if n == 3589:  # the PublicTest split of FER2013 has exactly 3,589 images
        return f"{n:,} test images (FER2013 PublicTest)"
    return f"{n:,} test images" + (f" from {source}" if source else "") + (
        " (not the FER2013 test split)")


def cpu_name(cpuinfo: str | None = None) -> str:
    """The processor's model name and its widest vector extension, e.g. ``AMD EPYC (AVX2)``.

    The extension is recorded because it sets training speed here more than the model name
    does: the same "AMD EPYC" trained this project's network 2.3x slower without AVX-512
    (docs/TRAINING_HISTORY.md).

    Args:
        cpuinfo: the text of ``/proc/cpuinfo`` (default: read it).
    """
    import platform

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    name, flags = None, set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and name is None:
            name = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    name = name or platform.processor() or platform.machine()
    isa = next((label for flag, label in (("avx512f", "AVX-512"), ("avx2", "AVX2"),
                                          ("avx", "AVX")) if flag in flags), None)
    return f"{name} ({isa})" if isa else name


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    try:
        return psutil.Process(int(pid)).create_time()
    except (psutil.Error, ValueError, OverflowError):
        return None


def process_identity(pid: int | None = None) -> dict[str, Any]:
    """``{"pid", "pid_started"}`` of a process (default: this one), as run files record it."""
    pid = os.getpid() if pid is None else int(pid)
    return {"pid": pid, "pid_started": process_start_time(pid)}


def pid_alive(pid: int | None, started: float | None = None) -> bool:
    """True when process ``pid`` runs on this machine and, if ``started`` is given, is the same
    process that started then (not a later one that was given a recycled pid).

    A zombie (exited, not yet reaped by its parent) is not alive.
    """
    if not pid:
        return False
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        # create_time is derived from the boot time and the process's start tick: the same
        # process always gives the same value to well under 0.1 s.
        return started is None or abs(proc.create_time() - float(started)) < 0.1
    except psutil.AccessDenied:
        return True
    except (psutil.Error, ValueError, OverflowError):
        return False


@dataclass
class RunInfo:
    """What the dashboard shows about one run, read from its files."""

    run_id: str
    path: Path
    status: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any] | None
    history_rows: list[dict[str, float]] | None = None  # shipped models carry their history

    @property
    def state(self) -> str:
        """The run's state; a 'running' or 'queued' run whose process is gone counts as failed."""
        state = self.status.get("state", "queued")
        if state in ("running", "queued"):
            owners = [self.status]
            if state == "queued":  # the launcher stands in until the process it started writes
                owners.append(read_json(self.path / PROCESS_FILE, {}) or {})
            owners = [o for o in owners if o.get("pid")]
            if owners and not any(pid_alive(o["pid"], o.get("pid_started")) for o in owners):
                return "failed"
        return state

    @property
    def error(self) -> str | None:
        """Why the run failed, in the user's terms (None unless it failed)."""
        if self.state != "failed":
            return None
        return self.status.get("error") or (
            "its training process is gone (killed or crashed without a word): see its log")

    @property
    def history(self) -> list[dict[str, float]]:
        if self.history_rows is not None:
            return self.history_rows
        return read_history(self.path / "history.csv")

    @property
    def best_val_accuracy(self) -> float | None:
        values = [r["val_accuracy"] for r in self.history if "val_accuracy" in r]
        return max(values) if values else None

    @property
    def test_accuracy(self) -> float | None:
        return (self.metrics or {}).get("accuracy")

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = (self.path / "train.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def load_run(path: Path) -> RunInfo:
    """Reads one run directory."""
    path = Path(path)
    return RunInfo(
        run_id=path.name,
        path=path,
        status=read_json(path / "status.json", {}) or {},
        config=read_json(path / "config.json", {}) or {},
        metrics=read_json(path / "metrics.json"),
    )


def shipped_models(models_dir: Path) -> list[RunInfo]:
    """The models in ``models/`` as runs, from the history and evaluation in their metadata."""
    out = []
    for meta_path in sorted(Path(models_dir).glob("*.json")):
        meta = read_json(meta_path, {}) or {}
        if "history" not in meta or "config" not in meta:
            continue
        training = meta.get("training") or {}
        # A warm restart's planned epochs are its stages' together, like its history.
        planned = sum(stage["config"].get("epochs", 0) for stage in training.get("stages", [])
                      if "config" in stage) or meta["config"].get("epochs")
        out.append(RunInfo(
            run_id=f"shipped: {meta.get('name', meta_path.stem)}",
            path=meta_path.with_suffix(".keras"),
            status={"state": "shipped", "epoch": training.get("epochs_done"),
                    "epochs": planned},
            config=meta["config"],
            metrics=meta.get("evaluation"),
            history_rows=meta["history"],
        ))
    return out


def list_runs(runs_dir: Path | None = None) -> list[RunInfo]:
    """All runs under ``runs_dir`` (default :data:`RUNS_DIR`), newest first."""
    root = Path(runs_dir or RUNS_DIR)
    if not root.is_dir():
        return []
    runs = [load_run(p) for p in root.iterdir() if (p / "config.json").exists()]
    return sorted(runs, key=lambda r: r.status.get("created", 0), reverse=True)


def request_stop(run_dir: Path) -> None:
    """Asks a run to stop after the current batch (the trainer polls for this file)."""
    atomic_write_text(Path(run_dir) / STOP_FILE, "stop requested\n")


def active_run(runs_dir: Path | None = None) -> RunInfo | None:
    """The run currently training on this machine, if any (one run at a time)."""
    for run in list_runs(runs_dir):
        if run.state in ("running", "queued"):
            return run
    return None
