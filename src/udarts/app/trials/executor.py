"""Running many trials: :class:`TrialExecutor` on the local or the Ray backend, with retries,
one line per finished trial and a progress bar; :func:`run_trials` for a list of them, and the
command-line flags (:func:`add_executor_arguments`)."""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from udarts.app.compare.plan import checkpoint_epoch
from udarts.app.trials.trial import Attempt, Trial, TrialError, TrialResult, run_attempt, trial_finished
from udarts.config import ConfigError

BACKENDS = ("local", "ray")
RAY_MISSING = 'the ray backend needs Ray, an optional extra: pip install -e ".[ray]" (or pip install ray)'


@dataclass(frozen=True)
class ExecutorSettings:
    """Where and how many trials run (the ``--backend``, ``--jobs``, ``--address``, ``--retries``,
    ``--cpus-per-trial`` and ``--gpus-per-trial`` flags)."""

    backend: str = "local"
    jobs: int | None = None
    address: str | None = None
    retries: int = 1
    cpus: int | None = None
    gpus: float = 0.0

    def trial_cpus(self) -> int:
        """CPUs of one trial: as given, else 1 on Ray and this machine's cores shared by the jobs locally."""
        if self.cpus is not None:
            return self.cpus
        return 1 if self.backend == "ray" else max(1, (os.cpu_count() or 1) // (self.jobs or 1))


def add_executor_arguments(parser: argparse.ArgumentParser, cpus_default: int | None = None) -> None:
    """The flags of :class:`ExecutorSettings` (``udarts compare`` and the sweeping benchmarks);
    ``cpus_default``: ``--cpus-per-trial``'s default instead of :meth:`ExecutorSettings.trial_cpus`'s."""
    parser.add_argument("--backend", choices=BACKENDS, default="local",
                        help="local: trials as processes on this machine (default); ray: as Ray tasks (pip install -e '.[ray]')")
    parser.add_argument("--jobs", type=int, help="trials run at a time (local default 1; ray default: as many as the cluster fits)")
    parser.add_argument("--address", help="ray: the cluster, 'auto' or HOST:PORT (default: start a local Ray)")
    parser.add_argument("--retries", type=int, default=1, help="tries again of a trial whose worker dies; it resumes (default 1)")
    parser.add_argument("--cpus-per-trial", type=int, default=cpus_default, help="CPUs (torch threads) of a trial (default: "
                        + (f"{cpus_default})" if cpus_default else "ray 1, local cores / jobs)"))
    parser.add_argument("--gpus-per-trial", type=float, default=0.0, help="ray: GPUs a trial asks for (default 0)")


def executor_settings(args: argparse.Namespace) -> ExecutorSettings:
    if args.address and args.backend != "ray":
        raise ConfigError("--address is the Ray cluster's: give --backend ray too")
    if args.gpus_per_trial and args.backend != "ray":
        raise ConfigError("--gpus-per-trial is what a trial asks of Ray (--backend ray); locally, every trial takes the config's device")
    if args.jobs is not None and args.jobs < 1 or args.retries < 0:
        raise ConfigError(f"--jobs {args.jobs}, --retries {args.retries}: expected jobs >= 1 and retries >= 0")
    if args.backend == "ray":
        try:
            import ray  # noqa: F401  (refused before any folder is written)
        except ImportError:
            raise ConfigError(RAY_MISSING) from None
    return ExecutorSettings(args.backend, args.jobs, args.address, args.retries, args.cpus_per_trial, args.gpus_per_trial)


def _ray_attempt(trial: Trial, attempt: int) -> Attempt:  # the Ray task
    return run_attempt(trial, attempt)


class TrialExecutor:
    """Runs trials on ``backend``, ``jobs`` at a time (Ray: default unlimited, the cluster queues
    them), each retried ``retries`` times when its worker dies. ``submit`` returns a future of a
    :class:`TrialResult` (or :class:`TrialError`); ``log`` gets one line per finished trial, and a
    progress bar (``progress``) shows the trials done and an ETA. Use it as a context manager."""

    def __init__(self, backend: str = "local", jobs: int | None = None, address: str | None = None, retries: int = 1,
                 log: Callable[[str], None] = print, progress: bool = True) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"backend {backend!r}: expected one of {', '.join(BACKENDS)}")
        self.backend, self.retries, self.log = backend, retries, log
        self._ray = self._started_ray = self._task = None
        if backend == "ray":
            self._ray, self._started_ray = _connect_ray(address)
            self._task = self._ray.remote(_ray_attempt)
        workers = jobs or (1 if backend == "local" else 256)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="udarts-trial")
        self._lock = threading.Lock()
        self._dirs: set[Path] = set()
        self._running: set[Any] = set()  # local processes or Ray object refs, stopped on an interrupt
        self._stopping = False
        self._done = self._total = 0
        self._progress = progress
        self._bar = None  # made at the first trial that runs: none when every trial is reused

    def __enter__(self) -> "TrialExecutor":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if error is not None:
            self.stop()
        self.close()

    def _say(self, line: str) -> None:
        if self._bar is None:
            return self.log(line)
        with self._bar.external_write_mode():
            self.log(line)

    def submit(self, trial: Trial) -> concurrent.futures.Future:
        with self._lock:
            if trial.run_dir in self._dirs:
                raise ConfigError(f"{trial.run_dir}: two trials ({trial.name!r} and an earlier one) would write this run folder")
            self._dirs.add(trial.run_dir)
        if trial_finished(trial):
            self._say(f"{trial.name}: finished run reused ({trial.run_dir})")
            future: concurrent.futures.Future = concurrent.futures.Future()
            future.set_result(TrialResult(trial.name, trial.run_dir, "reused", 0, 0.0, trial.log_path))
            return future
        if self._ray is not None:
            self._check_fits(trial)
        with self._lock:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=0, unit="trial", desc="trials", disable=not self._progress, file=sys.stderr,
                                 dynamic_ncols=True)
            self._total += 1
            self._bar.total = self._total
            self._bar.refresh()
        return self._pool.submit(self._run, trial)

    def run(self, trials: Iterable[Trial]) -> list[TrialResult]:
        """Every trial to its end, in the order given; :class:`TrialError` lists those that failed
        after the others have finished."""
        futures = [self.submit(trial) for trial in trials]
        concurrent.futures.wait(futures)
        failed = [str(future.exception()) for future in futures if future.exception() is not None]
        if failed:
            raise TrialError(f"{len(failed)} of {len(futures)} trial(s) failed: " + "; ".join(failed))
        return [future.result() for future in futures]

    def _run(self, trial: Trial) -> TrialResult:
        began, first = time.perf_counter(), None
        for number in range(1, self.retries + 2):
            if self._stopping:
                raise TrialError(f"{trial.name}: stopped before it finished ({trial.run_dir})")
            try:
                attempt = self._attempt(trial, number)
            except Exception as error:  # raised where the trial runs (RayTaskError: its cause), not by the trial's process
                cause = getattr(error, "cause", None) or error
                attempt = Attempt(1, None, 0.0, f"{type(cause).__name__}: {(str(cause).strip().splitlines() or [''])[0]}")
            first = first or attempt
            if attempt.returncode == 0:
                return self._finished(trial, first, number, time.perf_counter() - began)
            if attempt.died and number <= self.retries and not self._stopping:
                self._say(f"{trial.name}: attempt {number} died ({attempt.why}); trying again, from its last checkpoint "
                          f"(epoch {checkpoint_epoch(trial.run_dir) or 0})")
                continue
            with self._lock:
                self._bar.update(1)
            tries = f" after {number} attempt(s)" if number > 1 else ""
            self._say(f"{trial.name}: failed{tries} ({attempt.why}); log: {trial.log_path}")
            raise TrialError(f"{trial.name} failed{tries} ({attempt.why}; log: {trial.log_path})")
        raise AssertionError("unreachable")

    def _finished(self, trial: Trial, first: Attempt, attempts: int, seconds: float) -> TrialResult:
        status = "trained" if first.start_epoch is None else "resumed"
        with self._lock:
            self._done += 1
            self._bar.update(1)
            count = f"[{self._done}/{self._total}]"
        how = "trained" if status == "trained" else f"resumed from epoch {first.start_epoch}"
        tries = f", {attempts} attempts" if attempts > 1 else ""
        self._say(f"{count} {trial.name}: {how}, done in {seconds / 60:.1f} min{tries} ({trial.run_dir})")
        return TrialResult(trial.name, trial.run_dir, status, attempts, seconds, trial.log_path)

    def _attempt(self, trial: Trial, number: int) -> Attempt:
        if self._ray is None:
            def started(process: subprocess.Popen) -> None:
                with self._lock:
                    self._running.add(process)
                if self._stopping:  # stop() came between the check and the start
                    process.terminate()
            try:
                return run_attempt(trial, number, started)
            finally:
                with self._lock:
                    self._running = {process for process in self._running if process.poll() is None}
        ray = self._ray
        task = self._task.options(num_cpus=trial.cpus, num_gpus=trial.gpus, max_retries=0, name=f"udarts trial {trial.name}")
        reference = task.remote(trial, number)
        with self._lock:
            self._running.add(reference)
        try:
            return ray.get(reference)
        except (ray.exceptions.RayTaskError, ray.exceptions.TaskCancelledError, ray.exceptions.TaskUnschedulableError):
            raise
        except ray.exceptions.RayError as error:  # the worker or its node was lost under the trial
            return Attempt(None, None, 0.0, f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}")
        finally:
            with self._lock:
                self._running.discard(reference)

    def _check_fits(self, trial: Trial) -> None:
        resources = self._ray.cluster_resources()
        for name, wanted in (("CPU", trial.cpus), ("GPU", trial.gpus)):
            if wanted > resources.get(name, 0):
                raise ConfigError(f"trial {trial.name!r} asks for {wanted:g} {name}(s); the Ray cluster has "
                                  f"{resources.get(name, 0):g} (give fewer with --cpus-per-trial / --gpus-per-trial)")

    def stop(self) -> None:
        """Start no more trials and end the running ones (they resume on the next run)."""
        self._stopping = True
        with self._lock:
            running = list(self._running)
        for item in running:
            if isinstance(item, subprocess.Popen):
                item.terminate()
            else:
                self._ray.cancel(item, force=True)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._bar is not None:
            self._bar.close()
        if self._started_ray:
            self._ray.shutdown()


def _connect_ray(address: str | None):
    """``(ray, started here)``: the Ray session this process has, the cluster at ``address``, or a
    new local Ray."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    if ray.is_initialized():
        return ray, False
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except ConnectionError as error:
        raise ConfigError(f"--address {address}: no Ray cluster reached ({(str(error).splitlines() or [''])[0]}); "
                          "start one with `ray start --head`, or leave out --address for a local Ray") from error
    return ray, True


def run_trials(trials: Iterable[Trial], backend: str = "local", jobs: int | None = None, address: str | None = None,
               retries: int = 1, log: Callable[[str], None] = print, progress: bool = True) -> list[TrialResult]:
    """Bring every trial to its last epoch (see the module's example); results in the order given."""
    with TrialExecutor(backend, jobs, address, retries, log, progress) as executor:
        return executor.run(trials)
