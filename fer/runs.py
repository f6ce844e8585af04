"""Run directories on disk: atomic writes, status records, and listing runs for the UI.

A run lives in ``runs/<run-id>/`` with ``config.json``, ``status.json``, ``history.csv``,
``best.keras``, ``last.keras``, ``metrics.json`` and ``train.log``. Every file is written to a
temporary name and renamed, so a reader (the dashboard) never sees half a file. Nothing here
imports TensorFlow: the UI lists and reads runs without loading it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fer.config import TrainConfig
from fer.data import CLASSES

RUNS_DIR = Path(os.environ.get("FER_RUNS_DIR", Path(__file__).resolve().parent.parent / "runs"))
STATUSES = ("queued", "running", "finished", "failed", "stopped")
HISTORY_FIELDS = (
    "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate", "seconds")
STOP_FILE = "STOP"


def atomic_write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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


def cpu_name() -> str:
    """The processor's model name (for recording where a run trained)."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pid_alive(pid: int | None) -> bool:
    """True when a process with this pid exists on this machine."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        """The run's state; a 'running' run whose process is gone counts as failed."""
        state = self.status.get("state", "queued")
        if state in ("running", "queued") and "pid" in self.status:
            if not pid_alive(self.status.get("pid")):
                return "failed"
        return state

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
