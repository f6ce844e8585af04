"""The launcher and run files under real processes: kills, stale locks, dead or recycled pids,
zombies, simultaneous launches, and the one atomic write every run file goes through."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import ROOT

from fer import atomic, launch, runs
from fer.config import TrainConfig

TOY = dict(batch_size=8, patience=0, crop_size=40, preset="vgg_gap")


def _wait_for(predicate, timeout=180, every=0.05):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out")


def _dead_pid() -> tuple[int, float]:
    """The pid and start time of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(proc.pid).create_time()
    proc.wait()
    return proc.pid, started


def _run_dir_with(root: Path, name: str, state: str, **status) -> Path:
    run = root / name
    run.mkdir(parents=True)
    runs.atomic_write_json(run / "config.json", {"preset": "vgg_gap", "epochs": 3})
    runs.write_status(run, state, epoch=1, epochs=3, **status)
    return run


# --- the atomic write -------------------------------------------------------------------------

def test_two_threads_writing_one_file_never_collide(tmp_path):
    # The old helper named its temporary after the pid alone: two threads of one process (two
    # sessions of the app) wrote the same temporary and one rename found it gone.
    path = tmp_path / "status.json"
    texts = {name: name * 5000 for name in ("a", "b")}
    errors = []

    def writer(name):
        try:
            for _ in range(300):
                runs.atomic_write_text(path, texts[name])
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert path.read_text() in texts.values()  # one writer's whole text, never a mix
    assert atomic.temporaries(tmp_path) == []


def test_atomic_write_flushes_to_disk_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename"), real_replace(a, b)))
    atomic.atomic_write(tmp_path / "x.txt", "hello")
    assert events[:2] == ["fsync", "rename"]
    assert (tmp_path / "x.txt").read_text() == "hello"


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "best.keras"
    path.write_bytes(b"old weights")

    def broken(tmp):
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write(path, broken, suffix=".keras")
    assert path.read_bytes() == b"old weights"
    assert atomic.temporaries(tmp_path) == []


def test_leftover_temporaries_of_dead_writers_are_cleaned(tmp_path):
    dead, _ = _dead_pid()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = tmp_path / f".history.csv.{dead}-abc123.tmp"
        stale_keras = tmp_path / f".last.keras.{dead}-x_y9.tmp.keras"
        busy = tmp_path / f".history.csv.{live.pid}-def456.tmp"
        for p in (stale, stale_keras, busy):
            p.write_text("partial")
        assert sorted(atomic.clean_temporaries(tmp_path)) == sorted([stale, stale_keras])
        assert busy.exists()  # its writer may still rename it
    finally:
        live.kill()
        live.wait()


# --- process identity -------------------------------------------------------------------------

def test_a_dead_pid_a_zombie_and_a_recycled_pid_are_not_a_live_run(tmp_path):
    dead, dead_started = _dead_pid()
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    zombie_started = psutil.Process(zombie.pid).create_time()
    _wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE)
    try:
        me = psutil.Process(os.getpid()).create_time()
        cases = {
            "dead": dict(pid=dead, pid_started=dead_started),
            # Exited but never reaped: os.kill(pid, 0) still succeeds on it.
            "zombie": dict(pid=zombie.pid, pid_started=zombie_started),
            # After a restart the pid belongs to another process, started later.
            "recycled": dict(pid=os.getpid(), pid_started=me - 3600),
        }
        for name, status in cases.items():
            run = runs.load_run(_run_dir_with(tmp_path, name, "running", **status))
            assert run.state == "failed", name
            assert "gone" in run.error
        alive = runs.load_run(_run_dir_with(tmp_path, "alive", "running", pid=os.getpid(),
                                            pid_started=me))
        assert alive.state == "running"
        assert runs.active_run(tmp_path).run_id == "alive"
    finally:
        zombie.wait()


# --- the launcher, with real training processes -----------------------------------------------

def test_stale_lock_and_dead_runs_do_not_block_a_new_launch(fer_folder, tmp_path):
    root = tmp_path / "runs"
    dead, dead_started = _dead_pid()
    _run_dir_with(root, "20250101-000000-vgg_gap", "running", pid=dead, pid_started=dead_started)
    _run_dir_with(root, "20250102-000000-vgg_gap", "queued", pid=os.getpid(),
                  pid_started=psutil.Process().create_time() - 3600)  # a recycled pid
    # The lock file of a launcher that crashed while holding it (old or new format).
    (root / launch.LOCK_FILE).write_text(json.dumps({"pid": dead, "pid_started": dead_started}))
    run = launch.start_run(TrainConfig(data=str(fer_folder), epochs=1, **TOY), runs_dir=root)
    assert run.state in ("queued", "running")
    finished = _wait_for(lambda: runs.load_run(run.path).state != "running"
                         and runs.load_run(run.path).state != "queued" and runs.load_run(run.path))
    assert finished.state == "finished", finished.status


def test_a_live_launch_holds_the_lock_and_names_its_owner(tmp_path):
    code = ("import sys, time\nfrom pathlib import Path\nfrom fer import launch\n"
            "with launch.launch_lock(Path(sys.argv[1])):\n"
            "    print('locked', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(launch.LaunchError, match=f"in progress \\(process {holder.pid}\\)"):
            launch.start_run(TrainConfig(epochs=1), runs_dir=tmp_path)
        holder.kill()  # dies holding the lock: the kernel releases it
        holder.wait()
        with launch.launch_lock(tmp_path):
            pass
    finally:
        holder.kill()
        holder.wait()


def test_two_launches_at_the_same_moment_start_exactly_one_run(fer_folder, tmp_path):
    root = tmp_path / "runs"
    config = TrainConfig(data=str(fer_folder), epochs=1, **TOY)
    barrier = threading.Barrier(2)
    started, refused = [], []

    def launch_one():
        barrier.wait()
        try:
            started.append(launch.start_run(config, runs_dir=root))
        except launch.LaunchError as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=launch_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(started) == 1 and len(refused) == 1, (started, refused)
    assert len(list(root.glob("*/config.json"))) == 1
    run = started[0]
    _wait_for(lambda: runs.load_run(run.path).state not in ("queued", "running"))
    assert runs.load_run(run.path).state == "finished"


def test_sigkill_mid_epoch_then_resume_continues_the_history(fer_folder, tmp_path):
    root = tmp_path / "runs"
    run = launch.start_run(TrainConfig(data=str(fer_folder), epochs=2, **TOY), runs_dir=root)
    # "epoch 1/2" is logged after epoch 1's files are written: the process is then in epoch 2.
    _wait_for(lambda: "epoch 1/2" in runs.load_run(run.path).log_tail(50))
    child = runs.read_json(run.path / runs.PROCESS_FILE)["pid"]
    os.kill(child, signal.SIGKILL)
    # The launcher reaps its child (no zombie) and records how it ended.
    _wait_for(lambda: not psutil.pid_exists(child), timeout=30)
    killed = _wait_for(lambda: (r := runs.load_run(run.path)).status.get("state") == "failed"
                       and r, timeout=30)
    assert "SIGKILL" in killed.error
    assert runs.active_run(root) is None
    done = len(killed.history)
    assert done >= 1 and (run.path / "last.keras").exists()

    launch.resume_run(run.path, runs_dir=root)
    final = _wait_for(lambda: (r := runs.load_run(run.path)).state not in ("queued", "running")
                      and r)
    assert final.state == "finished", final.status
    assert [r["epoch"] for r in final.history] == [1, 2]
    assert final.status["error"] is None
    assert atomic.temporaries(run.path) == []


def test_a_process_that_cannot_start_is_a_failed_run(tmp_path, monkeypatch):
    def no_memory(*args, **kwargs):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(launch.subprocess, "Popen", no_memory)
    with pytest.raises(launch.LaunchError, match="could not start.*Cannot allocate memory"):
        launch.start_run(TrainConfig(epochs=1), runs_dir=tmp_path)
    (run_dir,) = [p.parent for p in tmp_path.glob("*/config.json")]
    run = runs.load_run(run_dir)
    assert run.state == "failed" and "Cannot allocate memory" in run.error
    assert runs.active_run(tmp_path) is None  # not "queued" with this process's pid forever
    # The log file handed to the child was closed again.
    log = str(run_dir / "stdout.log")
    assert all(f.path != log for f in psutil.Process().open_files())


def test_the_recorded_cpu_names_its_widest_vector_extension():
    # Training speed on "AMD EPYC" machines here differed 2.3x with and without AVX-512, so a
    # run's record must tell them apart. Flags lines shortened from real /proc/cpuinfo files.
    avx2 = "model name\t: AMD EPYC\nflags\t\t: fpu sse2 avx fma avx2 bmi2\n" * 2
    avx512 = "model name\t: AMD EPYC\nflags\t\t: fpu avx avx2 avx512f avx512bw\n"
    assert runs.cpu_name(avx2) == "AMD EPYC (AVX2)"
    assert runs.cpu_name(avx512) == "AMD EPYC (AVX-512)"
    assert runs.cpu_name("model name\t: Some ARM core\nflags\t: fp asimd\n") == "Some ARM core"
