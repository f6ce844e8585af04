"""Starting training in its own process, one run per machine, for the launcher page.

The Streamlit script never trains: it writes the run's ``config.json``, spawns
``python -m fer train --config ... --run-dir ...`` in a new session (so it outlives an app
restart) and from then on only reads the run's files. It keeps the process handle in a thread
that waits for it, so a trainer that dies hard is reaped (no zombie) and recorded as failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

try:
    import fcntl
except ImportError:  # Windows: msvcrt.locking instead
    fcntl = None

from fer import runs
from fer.config import TrainConfig

ROOT = Path(__file__).resolve().parent.parent
LOCK_FILE = ".launch.lock"


class LaunchError(RuntimeError):
    """A run that could not be started; the message says why."""


def read_only() -> bool:
    """True when ``FER_READ_ONLY`` is set (public deployments: browse runs, launch nothing)."""
    return _truthy(os.environ.get("FER_READ_ONLY", ""))


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on")


LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
PROXY_HEADERS = ("x-forwarded-for", "x-forwarded-host", "x-real-ip", "forwarded")
HOW_TO_TRAIN = (
    "To train, run the app on your own machine (`streamlit run app.py`, then open "
    "http://localhost:8501) or use `python -m fer train`; the owner of a deployment can turn "
    "training on for everyone who can open it with `FER_ALLOW_TRAINING=1` (an environment "
    "variable or a secret)."
)


class Permission(NamedTuple):
    """Whether this request may train, and why (Markdown, shown on the Train page)."""

    allowed: bool
    reason: str


def host_name(host: str | None) -> str:
    """The host name of a ``Host`` header or URL, without scheme, port or brackets."""
    host = (host or "").strip().lower()
    if "://" in host:
        host = urlsplit(host).netloc
    if host.startswith("["):  # [::1]:8501
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def training_permission(host: str | None, remote_ip: str | None = None, *,
                        forwarded: bool = False, allow: str | None = None,
                        read_only: str | None = None) -> Permission:
    """Training is for the machine the app runs on, unless its owner opens it up.

    A public deployment must not let every visitor start hour-long runs or upload 200 MB, so
    training needs a request addressed to localhost from this machine, or ``FER_ALLOW_TRAINING``;
    ``FER_READ_ONLY`` turns it off whatever else is set.

    Args:
        host: the request's ``Host`` header (or the app's URL); None when unknown.
        remote_ip: the client's address; Streamlit gives None for a loopback connection.
        forwarded: the request carries proxy headers (``X-Forwarded-For`` and the like): it
            came from elsewhere through a proxy on this machine, whatever its host says.
        allow: the ``FER_ALLOW_TRAINING`` setting (default: the environment).
        read_only: the ``FER_READ_ONLY`` setting (default: the environment).

    Returns:
        The decision and its reason.
    """
    env = os.environ.get
    if _truthy(env("FER_READ_ONLY") if read_only is None else read_only):
        return Permission(False, "Training is turned off on this deployment (`FER_READ_ONLY`). "
                          + HOW_TO_TRAIN.split("; the owner")[0] + ".")
    if _truthy(env("FER_ALLOW_TRAINING") if allow is None else allow):
        return Permission(True, "Training is on for every visitor (`FER_ALLOW_TRAINING`).")
    name = host_name(host)
    if name in LOCAL_HOSTS and remote_ip in (None, *LOCAL_HOSTS) and not forwarded:
        return Permission(True, "Training is on: this app is served to this machine only.")
    where = (f" (this page was asked for as `{name}`" + (f" from {remote_ip}" if remote_ip else "")
             + (" through a proxy" if forwarded else "") + ")") if name else ""
    return Permission(False, f"Training is off: this app is served to other machines{where}, "
                      "where anyone who opens it could start hour-long runs. " + HOW_TO_TRAIN)


def data_roots() -> list[Path]:
    """The folders the Train page reads datasets from: the project, its uploads, and the
    folders in ``FER_DATA_DIR`` (``os.pathsep``-separated)."""
    roots = [ROOT, runs.RUNS_DIR / "uploads"]
    roots += [Path(p).expanduser() for p in os.environ.get("FER_DATA_DIR", "").split(os.pathsep)
              if p.strip()]
    return [r.resolve() for r in roots]


def check_data_path(path: str) -> Path:
    """``path`` resolved, if it lies inside :func:`data_roots` (so the page never lists what is
    in other server folders).

    Raises:
        LaunchError: the path is outside them.
    """
    resolved = (ROOT / Path(path).expanduser()).resolve()
    if any(resolved == root or root in resolved.parents for root in data_roots()):
        return resolved
    raise LaunchError("the page reads datasets inside the project folder only (or in the "
                      "folders the server's owner lists in `FER_DATA_DIR`): put the dataset "
                      "under the project, e.g. `./Dataset`, or upload the zip")


def start_run(config: TrainConfig, runs_dir: Path | None = None) -> runs.RunInfo:
    """Validates the config and starts a training process.

    Args:
        config: the run's hyperparameters (``config.data`` must be readable).
        runs_dir: where runs live (default: :data:`fer.runs.RUNS_DIR`).

    Returns:
        The new run, status ``queued`` (the process marks it ``running`` once it starts).

    Raises:
        LaunchError: another run is active, the config is invalid, or the process could not
            start (the run is then recorded as failed with the reason).
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
            runs.teacher_weights(config.teacher)
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
    with launch_lock(root):
        active = runs.active_run(root)
        if active is not None:
            raise LaunchError(
                f"run {active.run_id} is still {active.state} (one run at a time on this "
                f"machine): stop it or wait for it to finish"
            )
        run_dir, args = prepare()
        # Until the process it starts writes its own status, this process stands in (a resumed
        # run's old, dead pid would make it read as failed). From then on only the trainer
        # writes status.json; this process records the child in process.json instead.
        (run_dir / runs.PROCESS_FILE).unlink(missing_ok=True)
        runs.write_status(run_dir, "queued", epoch=epoch, epochs=epochs, error=None,
                          finished=None, **runs.process_identity())
        env = {**os.environ, "FER_RUNS_DIR": str(root), "PYTHONUNBUFFERED": "1"}
        try:
            with open(run_dir / "stdout.log", "ab") as log:  # the child keeps its own copy
                proc = subprocess.Popen(
                    [sys.executable, "-m", "fer", "train", *args],
                    cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=env,
                    start_new_session=True,  # survives an app restart; Ctrl-C in its shell too
                )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            message = f"the training process could not start: {exc}"
            runs.write_status(run_dir, "failed", error=message, finished=time.time())
            raise LaunchError(message) from None
        runs.atomic_write_json(run_dir / runs.PROCESS_FILE, runs.process_identity(proc.pid))
        threading.Thread(target=_reap, args=(proc, run_dir), daemon=True,
                         name=f"reap-{proc.pid}").start()
        return runs.load_run(run_dir)


def _reap(proc: subprocess.Popen, run_dir: Path) -> None:
    """Waits for a training process (so a hard crash leaves no zombie) and, if it died without
    recording how it ended, records that it failed and why."""
    code = proc.wait()
    status = runs.read_json(run_dir / "status.json", {}) or {}
    if status.get("state") in ("queued", "running") and status.get("pid") in (
            proc.pid, os.getpid()):
        # The trainer is gone: nobody else writes this status any more.
        runs.write_status(run_dir, "failed", error=exit_reason(code), finished=time.time())


def exit_reason(code: int) -> str:
    """A process's exit code in words (negative: killed by that signal)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return (f"the training process was killed ({name}"
                + (", often out of memory" if name == "SIGKILL" else "") + "); resume it from "
                "its last saved epoch")
    return f"the training process ended with exit code {code} before recording why (see its log)"


@contextlib.contextmanager
def launch_lock(root: Path):
    """Holds ``<root>/.launch.lock`` while a run is checked for and started.

    The lock is the operating system's (``flock``; ``msvcrt.locking`` on Windows) on that file:
    the kernel releases it when its owner exits, however it exits, so a crashed launcher never
    blocks launching; the file itself records the owner (pid and start time) for the message
    a refused launch shows.

    Raises:
        LaunchError: another launch holds the lock now.
    """
    path = Path(root) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if not _try_lock(fd):
            owner = runs.read_json(path, {}) or {}
            who = f" (process {owner['pid']})" if owner.get("pid") else ""
            raise LaunchError(f"another launch is in progress{who}; try again in a moment")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(runs.process_identity()).encode(), 0)
            yield
        finally:
            os.ftruncate(fd, 0)
            _unlock(fd)
    finally:
        os.close(fd)


def _try_lock(fd: int) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
    import msvcrt

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
