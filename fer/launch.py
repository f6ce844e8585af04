"""Starting training in its own process, one run per machine, for the launcher page.

The Streamlit script never trains: it writes the run's ``config.json``, spawns
``python -m fer train --config ... --run-dir ...`` in a new session (so it outlives an app
restart) and from then on only reads the run's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fer import runs
from fer.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


class LaunchError(RuntimeError):
    """A run that could not be started; the message says why."""


def read_only() -> bool:
    """True when ``FER_READ_ONLY`` is set (public deployments: browse runs, launch nothing)."""
    return os.environ.get("FER_READ_ONLY", "").strip().lower() in ("1", "true", "yes")


def start_run(config: TrainConfig, runs_dir: Path | None = None) -> runs.RunInfo:
    """Validates the config and starts a training process.

    Args:
        config: the run's hyperparameters (``config.data`` must be readable).
        runs_dir: where runs live (default: :data:`fer.runs.RUNS_DIR`).

    Returns:
        The new run, status ``queued`` (the process marks it ``running`` once it starts).

    Raises:
        LaunchError: another run is active, or the config is invalid.
    """
    root = Path(runs_dir or runs.RUNS_DIR)
    try:
        config.validated()
        if config.init_from:
            preset = runs.init_preset(runs.init_weights(config.init_from))
            if preset and preset != config.preset:
                raise ValueError(f"init_from was trained as {preset}: choose that preset to "
                                 f"start from it (this run is {config.preset})")
        if config.teacher:
            runs.init_weights(config.teacher, "teacher")
    except (ValueError, FileNotFoundError) as exc:
        raise LaunchError(str(exc)) from None

    def prepare() -> tuple[Path, list[str]]:
        run_dir = runs.new_run_dir(config, root)
        runs.write_config(run_dir, config)
        return run_dir, ["--config", str(run_dir / "config.json"), "--run-dir", str(run_dir)]

    return _spawn(root, prepare, config.epochs)


def resume_run(run_dir: Path, runs_dir: Path | None = None) -> runs.RunInfo:
    """Continues a stopped or failed run from its ``last.keras`` in a training process.

    Args:
        run_dir: the run to continue (its config, history and schedule carry on).
        runs_dir: where runs live (default: :data:`fer.runs.RUNS_DIR`).

    Returns:
        The run, status ``queued``.

    Raises:
        LaunchError: another run is active, or this one has nothing to resume from.
    """
    run = runs.load_run(Path(run_dir))
    if run.state not in ("stopped", "failed"):
        raise LaunchError(f"run {run.run_id} is {run.state}; only a stopped or failed run "
                          f"can be resumed")
    if not (run.path / "last.keras").exists():
        raise LaunchError(f"run {run.run_id} ended before its first epoch was saved: there is "
                          f"nothing to resume; start a new run instead")

    def prepare() -> tuple[Path, list[str]]:
        return run.path, ["--resume", str(run.path)]

    return _spawn(Path(runs_dir or runs.RUNS_DIR), prepare, run.status.get("epochs") or 0,
                  epoch=len(run.history))


def _spawn(root: Path, prepare, epochs: int, epoch: int = 0) -> runs.RunInfo:
    """Under the launch lock and with no active run: ``prepare()`` the run, start its process."""
    root.mkdir(parents=True, exist_ok=True)
    lock = root / ".launch.lock"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        raise LaunchError("another launch is in progress; try again in a moment") from None
    try:
        active = runs.active_run(root)
        if active is not None:
            raise LaunchError(
                f"run {active.run_id} is still {active.state} (one run at a time on this "
                f"machine): stop it or wait for it to finish"
            )
        run_dir, args = prepare()
        # Until the child's pid replaces it, this process stands in: a resumed run's old, dead
        # pid would make it read as failed.
        runs.write_status(run_dir, "queued", epoch=epoch, epochs=epochs, error=None,
                          pid=os.getpid())
        log = open(run_dir / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, "FER_RUNS_DIR": str(root), "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "fer", "train", *args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # survives an app restart; Ctrl-C in the app's shell too
        )
        log.close()
        if (runs.read_json(run_dir / "status.json", {}) or {}).get("state") == "queued":
            runs.write_status(run_dir, "queued", pid=proc.pid)  # the child may be running already
        return runs.load_run(run_dir)
    finally:
        os.close(fd)
        lock.unlink(missing_ok=True)
