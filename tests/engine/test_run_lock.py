"""One writer per run folder: a second ``--out`` or ``--resume`` of a folder that a run is writing is
refused with one line naming the holder, and the first run's files are untouched; a ``kill -9``
leaves no lock behind."""

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from udarts.cli import main
from udarts.engine.layout import BEST_CHECKPOINT, CONFIG_FILE, LAST_CHECKPOINT, LOCK_FILE, METRICS_LOG, TENSORBOARD_DIR
from udarts.engine.lock import FolderLock, holder_of, is_locked
from udarts.engine.runs import Run, RunFolderError, load_checkpoint
from udarts.io import read_jsonl

SOURCE = Path(__file__).resolve().parents[2] / "src"
TINY = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
        "--set", "data.num_samples=24", "--set", "model.num_nodes=2", "--set", "model.ops=[conv_3x3,identity]"]

# A real udarts run in its own process that stops after committing epoch 1 until the file `go` appears.
WRITER = """
import sys, time
from pathlib import Path
from udarts.cli import main
from udarts.engine.runs import Run

paused, go = Path(sys.argv[1]), Path(sys.argv[2])
commit = Run.save_epoch

def commit_then_wait(self, state, is_best):
    commit(self, state, is_best)
    if state["epoch"] == 1:
        paused.touch()
        deadline = time.monotonic() + 300
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

Run.save_epoch = commit_then_wait
sys.exit(main(sys.argv[3:]))
"""


def start_writer(tmp_path, args):
    """The writer process, once it holds the run folder and has committed epoch 1."""
    paused, go = tmp_path / "paused", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SOURCE), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(paused), str(go), *args], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while not paused.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the first writer did not reach epoch 1:\n{process.communicate()[0]}")
        time.sleep(0.05)
    return process, go


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the run folder and its bytes (TensorBoard's event files aside)."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*"))
            if path.is_file() and TENSORBOARD_DIR not in path.relative_to(folder).parts}


def refused_line(capsys, *needles):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("udarts ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("kind, ending", [("train", "finishes"), ("search", "is killed with SIGKILL")])
def test_a_second_writer_is_refused_and_the_first_run_is_intact(tmp_path, capsys, kind, ending):
    run_dir = tmp_path / "run"
    flags = [*TINY, "--epochs", "3"]
    if kind == "train":
        flags += ["--model", "unet", "--set", "train.model_options={width: 4}"]
    process, go = start_writer(tmp_path, [kind, *flags, "--out", str(run_dir)])
    try:
        before = snapshot(run_dir)
        holder = f"process {process.pid} on {socket.gethostname()}, started "
        assert main([kind, "--resume", str(run_dir), "--no-progress"]) == 2
        refused_line(capsys, str(run_dir), "in use by another udarts run", holder)
        assert main([kind, *flags, "--out", str(run_dir)]) == 2
        refused_line(capsys, str(run_dir), "in use by another udarts run", holder)
        assert snapshot(run_dir) == before  # the refused writers changed nothing, the lock's record included
        if ending == "finishes":
            go.touch()
            assert process.wait(timeout=240) == 0, process.communicate()[0]
        else:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            assert is_locked(run_dir / LOCK_FILE) is False  # the kernel dropped the dead process's lock
            assert main([kind, "--resume", str(run_dir), "--no-progress"]) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert [record["epoch"] for record in read_jsonl(run_dir / METRICS_LOG)] == [1, 2, 3]
    last = load_checkpoint(run_dir / LAST_CHECKPOINT, kind=kind)
    assert last["epoch"] == 3 and load_checkpoint(run_dir / BEST_CHECKPOINT)["epoch"] == last["best_epoch"]
    assert not list(run_dir.glob("*.tmp"))


def test_a_run_holds_its_folder_until_closed_and_names_itself(tmp_path):
    run = Run(tmp_path / "run", {"seed": 0})
    with pytest.raises(RunFolderError, match=f"in use by another udarts run \\(process {os.getpid()} on "):
        Run(tmp_path / "run", resume=True)
    assert Run(tmp_path / "run", resume=True, lock=False).config() == {"seed": 0}  # reading needs no lock
    assert holder_of(tmp_path / "run" / LOCK_FILE).startswith(f"process {os.getpid()} on {socket.gethostname()}")
    run.close()
    resumed = Run(tmp_path / "run", resume=True)
    resumed.close()


def test_an_abandoned_lock_file_blocks_nothing(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / LOCK_FILE).write_text('{"pid": 1, "host": "elsewhere", "started": "yesterday"}\n')
    run = Run(folder, {"seed": 1})  # a folder holding only a lock file counts as empty
    assert str(os.getpid()) in holder_of(folder / LOCK_FILE)
    run.close()


def test_an_error_in_the_api_releases_the_folder_at_once(tmp_path, monkeypatch):
    from udarts import experiment
    from udarts.config import resolve

    def fails(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("udarts.engine.trainer.fit", fails)
    config = resolve(None, [({"train": {"model": "unet", "epochs": 1}, "progress": False}, "test")])
    errors = []
    try:
        experiment.run_train(config, tmp_path / "run")
    except RuntimeError as error:
        errors.append(error)  # kept alive, with its traceback and the run in it
    assert errors and not is_locked(tmp_path / "run" / LOCK_FILE)


def test_a_trial_does_not_clear_a_folder_that_a_run_is_writing(tmp_path):
    from udarts.app.trials import Trial, run_attempt

    folder = tmp_path / "runs" / "unet-seed0"
    writing = Run(folder, {"train": {"epochs": 1}})  # started, no checkpoint yet: a trial would start it anew
    trial = Trial("unet seed 0", "train", folder, flags=("--model", "unet", "--data", "synthetic"))
    with pytest.raises(RunFolderError, match="in use by another udarts run"):
        run_attempt(trial)
    assert (folder / CONFIG_FILE).is_file()
    writing.close()


def test_a_file_system_without_locks_is_written_with_a_note(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    run = Run(tmp_path / "run", {"seed": 2})
    assert "does not lock files" in capsys.readouterr().err
    assert not is_locked(tmp_path / "run" / LOCK_FILE)
    run.close()


def _hold(started, done):
    started.set()
    done.wait(60)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork: POSIX only")
def test_a_forked_child_does_not_keep_the_folder_locked(tmp_path):
    lock = FolderLock.take(tmp_path / LOCK_FILE)
    context = multiprocessing.get_context("fork")
    started, done = context.Event(), context.Event()
    child = context.Process(target=_hold, args=(started, done))
    child.start()  # as a DataLoader worker would be
    try:
        assert started.wait(60)
        assert is_locked(tmp_path / LOCK_FILE)
        lock.release()
        assert not is_locked(tmp_path / LOCK_FILE)  # the child, still alive, closed its copy
    finally:
        done.set()
        child.join(60)
