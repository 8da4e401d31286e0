"""Trials (``udarts.app.trials``): many trainings as processes on this machine or as Ray tasks,
retried and resumed when their worker dies, reused when finished; ``udarts compare --backend ray``
against the local backend. Tiny synthetic runs (16x16, width 4); the Ray tests start a local Ray
with 2 CPUs and skip when Ray is not installed (``pip install -e ".[ray]"``)."""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from udarts.app.compare import checkpoint_epoch
from udarts.app.trials import Trial, TrialError, TrialExecutor, run_trials
from udarts.cli import main
from udarts.config import ConfigError
from udarts.engine.layout import GENOTYPE_FILE, LAST_CHECKPOINT, METRICS_LOG, derived_genotype_name

TINY = ("--image-size", "16x16", "--batch-size", "4", "--width", "4", "--set", "data.num_samples=24",
        "--set", "model.num_nodes=2")
UNET = (*TINY, "--model", "unet", "--set", "train.model_options.width=4")


def unet_trial(run_dir: Path, epochs: int = 2, seed: int = 0, name: str = "unet", samples: int = 24) -> Trial:
    return Trial(name, "train", run_dir, flags=(*UNET, "--epochs", str(epochs), "--seed", str(seed),
                                                "--set", f"data.num_samples={samples}"))


def long_trial(run_dir: Path) -> Trial:
    """A trial whose epochs after the first leave a watcher seconds to kill it mid-run."""
    return unet_trial(run_dir, epochs=4, samples=96)


def epochs_logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run_dir / METRICS_LOG).read_text().splitlines()]


def kill_at_first_checkpoint(trial: Trial, which: str, timeout_s: float = 600) -> dict:
    """In a thread: once ``trial`` has checkpointed epoch 1, SIGKILL the process its log's latest
    attempt line names (``which``: ``pid``, the udarts process, or ``worker pid``, the process that
    started it); returns a dict that gets ``pid`` and ``epoch`` when it has killed."""
    killed: dict = {}

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        while (checkpoint_epoch(trial.run_dir) or 0) < 1:
            if time.monotonic() > deadline:
                return
            time.sleep(0.02)
        pid = int(re.findall(rf"# attempt 1: .*?\b{which} (\d+)", trial.log_path.read_text())[-1])
        os.kill(pid, signal.SIGKILL)
        killed.update(pid=pid, epoch=checkpoint_epoch(trial.run_dir))  # < 4: killed mid-run

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    killed["thread"] = thread
    return killed


@pytest.mark.slow
def test_local_trials_run_at_once_and_a_second_call_reuses_them(tmp_path):
    lines = []
    trials = [unet_trial(tmp_path / f"unet-s{seed}", epochs=1, seed=seed, name=f"unet seed {seed}") for seed in (0, 1)]
    results = run_trials(trials, jobs=2, log=lines.append, progress=False)
    assert [(result.name, result.status, result.attempts) for result in results] == [("unet seed 0", "trained", 1),
                                                                                      ("unet seed 1", "trained", 1)]
    done = [re.fullmatch(r"\[(\d)/2\] (unet seed \d): trained, done in \d+\.\d min \((.+)\)", line) for line in lines]
    assert sorted(match[1] for match in done) == ["1", "2"]  # one line per finished trial, counted in finishing order
    assert sorted((match[2], match[3]) for match in done) == [(trial.name, str(trial.run_dir)) for trial in trials]
    for trial in trials:
        assert epochs_logged(trial.run_dir) == [1]
        assert "$ " in trial.log_path.read_text() and "--out" in trial.log_path.read_text()
    stamps = {trial.run_dir: (trial.run_dir / LAST_CHECKPOINT).stat().st_mtime_ns for trial in trials}

    lines.clear()
    again = run_trials(trials, jobs=2, log=lines.append, progress=False)
    assert [result.status for result in again] == ["reused", "reused"]
    assert lines == [f"unet seed {seed}: finished run reused ({tmp_path / f'unet-s{seed}'})" for seed in (0, 1)]
    assert {trial.run_dir: (trial.run_dir / LAST_CHECKPOINT).stat().st_mtime_ns for trial in trials} == stamps


@pytest.mark.slow
def test_a_killed_local_trial_is_retried_and_resumes_from_its_checkpoint(tmp_path):
    trial = long_trial(tmp_path / "unet")
    killed = kill_at_first_checkpoint(trial, "pid")
    lines = []
    [result] = run_trials([trial], retries=1, log=lines.append, progress=False)
    killed["thread"].join()
    assert killed.get("epoch", 4) < 4, f"the trial was not killed mid-run: {killed}"
    assert result.status == "trained" and result.attempts == 2
    assert any("attempt 1 died (killed by SIGKILL); trying again, from its last checkpoint" in line for line in lines)
    log = trial.log_path.read_text()
    assert log.count("# attempt ") == 2 and f"train --resume {trial.run_dir}" in log.split("# attempt 2")[1]
    assert epochs_logged(trial.run_dir) == [1, 2, 3, 4]  # resumed: each epoch once, none lost or repeated
    assert checkpoint_epoch(trial.run_dir) == 4


@pytest.mark.slow
def test_a_trial_that_fails_on_its_own_is_not_retried_and_names_its_log(tmp_path):
    failing = Trial("bad", "train", tmp_path / "bad", flags=(*UNET, "--set", "train.epochs=0"))
    good = unet_trial(tmp_path / "good", epochs=1)
    with pytest.raises(TrialError) as error:
        run_trials([failing, good], jobs=2, retries=3, log=lambda line: None, progress=False)
    message = str(error.value)
    assert message.startswith("1 of 2 trial(s) failed: bad failed (exit code 2: udarts train: error:")
    assert "train.epochs" in message and str(failing.log_path) in message
    assert failing.log_path.read_text().count("# attempt ") == 1  # a config error is not retried
    assert checkpoint_epoch(good.run_dir) == 1  # the other trial ran to its end
    assert main(["train", "--resume", str(good.run_dir), "--no-progress"]) == 0  # nothing left to do: no lock held


def test_two_trials_writing_one_folder_and_a_missing_ray_are_refused(tmp_path, monkeypatch):
    with TrialExecutor(progress=False, log=lambda line: None) as executor:
        executor.submit(unet_trial(tmp_path / "run", epochs=1)).result()
        with pytest.raises(ConfigError, match="two trials"):
            executor.submit(unet_trial(tmp_path / "run", epochs=1, name="again"))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=re.escape('pip install -e ".[ray]"')):
        TrialExecutor("ray")
    assert main(["compare", *TINY, "--models", "unet", "--epochs", "1", "--out", str(tmp_path / "c"), "--backend", "ray"]) == 2


def test_compare_takes_a_folder_of_genotypes(tmp_path):
    from udarts.app.compare import parse_entries

    folder = tmp_path / "random"
    folder.mkdir()
    for name in ("random-0-001.json", "random-0-000.json"):
        (folder / name).write_text("{}")
    entries = parse_entries(["unet"], [str(folder)])
    assert [(entry.label, entry.genotype) for entry in entries] == [
        ("unet", None), ("searchnet-random-0-000", str(folder / "random-0-000.json")),
        ("searchnet-random-0-001", str(folder / "random-0-001.json"))]
    assert [entry.label for entry in parse_entries([], [f"r={folder}"])] == ["r-random-0-000", "r-random-0-001"]
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / GENOTYPE_FILE).write_text("{}")
    (tmp_path / "search" / derived_genotype_name(1, None)).write_text("{}")
    assert [entry.genotype for entry in parse_entries([], [str(tmp_path / "search")])] == [str(tmp_path / "search" / GENOTYPE_FILE)]


@pytest.mark.slow
def test_a_second_writer_of_a_trials_run_folder_is_refused(tmp_path):
    trial = long_trial(tmp_path / "unet")
    with TrialExecutor(progress=False, log=lambda line: None) as executor:
        future = executor.submit(trial)
        while (checkpoint_epoch(trial.run_dir) or 0) < 1 and not future.done():
            time.sleep(0.02)
        writer = int(re.search(r"# attempt 1: pid (\d+)", trial.log_path.read_text()).group(1))
        os.kill(writer, signal.SIGSTOP)  # paused mid-run, the folder still its own
        try:
            second = subprocess.run([sys.executable, "-m", "udarts.cli", "train", "--resume", str(trial.run_dir),
                                     "--no-progress"], capture_output=True, text=True, timeout=300)
        finally:
            os.kill(writer, signal.SIGCONT)
        assert future.result().status == "trained"
    assert second.returncode == 2, second.stderr
    assert "lock" in second.stderr or "in use" in second.stderr
    assert epochs_logged(trial.run_dir) == [1, 2, 3, 4]


# ---- Ray -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason='Ray is not installed (pip install -e ".[ray]")')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_a_ray_trial_whose_worker_dies_is_retried_and_resumes(ray_cluster, tmp_path):
    trial = long_trial(tmp_path / "unet")
    killed = kill_at_first_checkpoint(trial, "worker pid")  # the Ray worker process that runs the trial
    lines = []
    [result] = run_trials([trial], backend="ray", retries=1, log=lines.append, progress=False)
    killed["thread"].join()
    assert killed.get("epoch", 4) < 4, f"the trial's worker was not killed mid-run: {killed}"
    assert result.status == "trained" and result.attempts == 2
    assert any("attempt 1 died (WorkerCrashedError" in line for line in lines), lines
    first_child = int(re.search(r"# attempt 1: pid (\d+)", trial.log_path.read_text()).group(1))
    with pytest.raises(ProcessLookupError):  # the worker's udarts process died with it: no second writer
        os.kill(first_child, 0)
    assert f"train --resume {trial.run_dir}" in trial.log_path.read_text().split("# attempt 2")[1]
    assert epochs_logged(trial.run_dir) == [1, 2, 3, 4]


@pytest.mark.slow
def test_compare_on_ray_makes_the_same_table_as_the_local_backend(ray_cluster, tmp_path):
    genotypes = tmp_path / "random"
    assert main(["sample", "--num", "1", "--seed", "0", "--out", str(genotypes), "--set", "model.num_nodes=2"]) == 0
    common = ["compare", *TINY, "--epochs", "1", "--models", "unet", "--model-option", "unet:width=4", "--genotypes",
              str(genotypes), "--seeds", "0,1", "--num-images", "0", "--latency-repeats", "1", "--cpus-per-trial", "1",
              "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "local"), "--jobs", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--backend", "ray"]) == 0
    tables = {}
    for backend in ("local", "ray"):
        with open(tmp_path / backend / "table.csv", newline="") as handle:
            tables[backend] = list(csv.DictReader(handle))
    timed = {"train_seconds_mean", "train_seconds_std", "latency_ms", "latency_device"}
    assert [row["model"] for row in tables["ray"]] == ["unet", "searchnet"]  # the folder's one genotype
    for local, ray in zip(tables["local"], tables["ray"], strict=True):
        assert {key: value for key, value in ray.items() if key not in timed} == \
            {key: value for key, value in local.items() if key not in timed}
        assert ray["seeds"] == "0 1" and float(ray["val_miou_mean"]) >= 0
