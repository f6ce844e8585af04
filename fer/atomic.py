"""Atomic file writes: the one write-then-rename used for every file a reader may open mid-write.

A reader (the dashboard, a resume, another helper process) sees the old file or the new one,
never half of one. Each write goes to a unique temporary name in the same folder (two writers
of the same file never share a temporary), is flushed to disk before the rename (a power cut
cannot leave a renamed but empty file), and is removed if the write fails. A writer killed
mid-write leaves a ``.<name>.<pid>-<random>.tmp`` file; :func:`clean_temporaries` removes those
whose process is gone. Standard library only: the UI imports this without TensorFlow.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TMP_TAG = ".tmp"


def atomic_write(
    path: str | os.PathLike, content: bytes | str | Callable[[Path], object], *, suffix: str = ""
) -> Path:
    """Writes ``path`` atomically.

    Args:
        path: the file to (re)place; its folder is created.
        content: bytes, text (UTF-8), or a function that writes the file at the temporary path
            it is given (e.g. ``model.save``, ``np.savez``).
        suffix: ends the temporary name, for writers that check it (Keras wants ``.keras``).

    Returns:
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The pid in the name lets clean_temporaries tell a dead writer's leftover from a live
    # writer's file; mkstemp's random part keeps two threads (or processes) apart.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                                    suffix=TMP_TAG + suffix)
    tmp = Path(tmp_name)
    try:
        if callable(content):
            os.close(fd)
            fd = -1
            tmp.unlink()  # some writers refuse to overwrite, and it must not look half-written
            content(tmp)
            fd = os.open(tmp, os.O_RDONLY)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else content
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a run's files from other users
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    """Writes ``arrays`` as a compressed ``.npz`` at ``path`` atomically; returns ``path``."""
    import numpy as np  # here, not at the top: the rest of this module is standard library

    return atomic_write(path, lambda tmp: np.savez_compressed(tmp, **arrays), suffix=".npz")


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporaries(folder: str | os.PathLike) -> list[Path]:
    """The temporary files :func:`atomic_write` left in ``folder`` (any writer, live or not)."""
    return sorted(p for p in Path(folder).glob(".*") if TMP_TAG in p.name and p.is_file())


def clean_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporaries of writers that are gone (killed mid-write); returns them.

    A temporary of this process counts as gone too: call this before this process writes.
    """
    from fer.runs import pid_alive

    removed = []
    for tmp in temporaries(folder):
        pid = tmp.name.rsplit(TMP_TAG, 1)[0].rsplit(".", 1)[-1].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and pid_alive(int(pid)):
            continue
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
