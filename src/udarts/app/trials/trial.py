"""One trial, where it runs: what it is (:class:`Trial`), whether it has finished, and one try of it
(:func:`run_attempt`: ``python -m udarts.cli search|train`` into its run folder, appending to its
log ``RUN_DIR.log``), the same on this machine and on a Ray worker."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import yaml

from udarts.app.compare.plan import checkpoint_epoch, run_finished
from udarts.config import ConfigError
from udarts.engine.layout import CONFIG_FILE
from udarts.engine.runs import check_unused

KINDS = ("train", "search")


class TrialError(RuntimeError):
    """One or more trials failed; the message names each trial, why, and its log."""


@dataclass(frozen=True)
class Step:
    """A ``udarts`` command run on the worker once the trial's run has finished, unless ``creates``
    exists (for example ``("eval", "RUN/best.pt", "--json", "RUN/eval.json")``)."""

    argv: tuple[str, ...]
    creates: Path


@dataclass(frozen=True)
class Trial:
    """One search or training: ``udarts KIND [--config CONFIG] FLAGS --out RUN_DIR``, or ``udarts
    KIND --resume RUN_DIR`` once it has a checkpoint. ``config`` is a resolved config (a dict,
    given to the command as its ``--config`` file); ``cpus`` and ``gpus`` are what it asks of a
    Ray worker (``cpus`` also sets its ``OMP_NUM_THREADS`` unless the environment sets it);
    ``then`` are commands run after the run has finished; ``cwd`` (default: here) is where the
    command runs, so that relative paths in the flags mean the same on every worker."""

    name: str
    kind: str
    run_dir: Path
    flags: tuple[str, ...] = ()
    config: Mapping[str, Any] | None = None
    cpus: int = 1
    gpus: float = 0.0
    then: tuple[Step, ...] = ()
    cwd: str = field(default_factory=os.getcwd)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"trial {self.name!r}: kind {self.kind!r}, expected one of {', '.join(KINDS)}")
        if self.cpus < 1 or self.gpus < 0:
            raise ConfigError(f"trial {self.name!r}: cpus {self.cpus} and gpus {self.gpus}; expected cpus >= 1, gpus >= 0")
        object.__setattr__(self, "run_dir", Path(self.cwd, self.run_dir).absolute())
        object.__setattr__(self, "flags", tuple(str(flag) for flag in self.flags))

    @property
    def log_path(self) -> Path:
        return self.run_dir.with_name(self.run_dir.name + ".log")


@dataclass(frozen=True)
class TrialResult:
    """A finished trial: ``status`` is ``reused`` (finished before), ``trained`` or ``resumed`` (it
    had a checkpoint when this executor first started it); ``attempts`` counts the tries."""

    name: str
    run_dir: Path
    status: str
    attempts: int
    seconds: float
    log: Path


@dataclass(frozen=True)
class Attempt:
    """What one try of a trial came to: ``returncode`` of the failing command (0 when all went
    well, negative: killed by that signal; None: the worker itself was lost, ``why`` says how)."""

    returncode: int | None
    start_epoch: int | None
    seconds: float
    why: str = ""

    @property
    def died(self) -> bool:
        """The worker died under the trial (killed, lost): another attempt may resume it."""
        return self.returncode is None or self.returncode < 0


def trial_finished(trial: Trial) -> bool:
    """Whether the run has checkpointed its last epoch and every ``then`` step's file exists."""
    return run_finished(trial.run_dir, trial.kind) and all(Path(trial.cwd, step.creates).exists() for step in trial.then)


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the trial's process die with the worker that started it (Linux:
    ``PR_SET_PDEATHSIG``), so that no orphan goes on writing the folder a retry resumes; resolved
    here, so that the forked child only makes one system call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the worker died before the call
            os._exit(1)

    return die_with_parent


def _command(trial: Trial, argv: Sequence[str], log, started: Callable[[subprocess.Popen], None] | None, attempt: int) -> int:
    """Run ``udarts ARGV`` for ``trial``, appending its output to ``log``; returns its exit code."""
    command = [sys.executable, "-m", "udarts.cli", *argv]
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(trial.cpus))}
    with subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=trial.cwd, env=environment,
                          preexec_fn=_parent_death_signal()) as process:
        log.write(f"# attempt {attempt}: pid {process.pid} on {socket.gethostname()}, worker pid {os.getpid()}, "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S')}: $ {' '.join(command)}\n")
        log.flush()
        if started is not None:
            started(process)
        return process.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return next((line for line in reversed(lines) if not line.startswith("#")), "")


def run_attempt(trial: Trial, attempt: int = 1, started: Callable[[subprocess.Popen], None] | None = None) -> Attempt:
    """One try of ``trial``, where it runs (this process or a Ray worker): nothing when it is
    finished, ``--resume`` when it has a checkpoint, else a new run (a folder started but never
    checkpointed is cleared first); then its ``then`` steps."""
    began = time.perf_counter()
    start_epoch = checkpoint_epoch(trial.run_dir)
    trial.run_dir.parent.mkdir(parents=True, exist_ok=True)
    with trial.log_path.open("a") as log:
        code = 0
        if not run_finished(trial.run_dir, trial.kind):
            if start_epoch is not None:
                code = _command(trial, [trial.kind, "--resume", str(trial.run_dir), "--no-progress"], log, started, attempt)
            else:
                if (trial.run_dir / CONFIG_FILE).is_file():
                    check_unused(trial.run_dir)  # not a run another process is writing now
                    shutil.rmtree(trial.run_dir)  # started but never checkpointed: nothing to keep
                config_flags, config_file = [], None
                if trial.config is not None:
                    handle, config_file = tempfile.mkstemp(prefix="udarts-trial-", suffix=".yaml")
                    with os.fdopen(handle, "w") as file:
                        yaml.safe_dump(dict(trial.config), file, sort_keys=False)
                    config_flags = ["--config", config_file]
                try:
                    code = _command(trial, [trial.kind, *config_flags, *trial.flags, "--out", str(trial.run_dir),
                                            "--no-progress"], log, started, attempt)
                finally:
                    if config_file is not None:
                        os.unlink(config_file)
        for step in trial.then:
            if code == 0 and not Path(trial.cwd, step.creates).exists():
                code = _command(trial, step.argv, log, started, attempt)
    why = ""
    if code < 0:
        why = f"killed by {signal.Signals(-code).name}" if -code in signal.valid_signals() else f"killed by signal {-code}"
    elif code > 0:
        why = f"exit code {code}: {_last_line(trial.log_path)}"
    return Attempt(code, start_epoch, time.perf_counter() - began, why)
