"""Trials: the many searches and trainings around a search, run on this machine or on a Ray cluster.

A trial is one ``udarts search`` or ``udarts train`` into its own run folder, with its resolved
config (or flags), resumable as every run folder is. An executor brings trials to their last
epoch, on one of two backends:

- ``local`` (the default): ``jobs`` trials at a time, each a ``python -m udarts.cli`` process on
  this machine;
- ``ray``: each trial a Ray task asking for its CPUs and GPUs, on the cluster at ``address``
  (``auto``, ``HOST:PORT``) or on a local Ray started on the fly (``pip install -e ".[ray]"``).

Either way the trial's process is the same command on the same folder, so the results read back
from the run folders are the same whichever backend ran them. Run folders must lie on a path
every worker sees (a shared file system, at the same path); the trial's log is
``RUN_DIR.log`` beside it. A trial whose worker dies (a killed process, a lost Ray worker or node)
is retried (``retries`` times) and resumes from its folder's last checkpoint; a finished one is
never run again; a trial that fails on its own (a bad config, a bug) is not retried. ::

    from udarts.app.trials import Trial, run_trials

    trials = [Trial(f"random {i} seed {seed}", "train", f"runs/sweep/random-{i}-s{seed}",
                    flags=("--config", "configs/cpu.yaml", "--genotype", f"genotypes/random-0-{i:03d}.json",
                           "--seed", str(seed)))
              for i in range(8) for seed in (0, 1)]
    results = run_trials(trials, backend="ray", address="auto", retries=2)  # or backend="local", jobs=2
    for result in results:
        print(result.name, result.status, result.run_dir)
"""

from udarts.app.trials.executor import (
    BACKENDS,
    RAY_MISSING,
    ExecutorSettings,
    TrialExecutor,
    add_executor_arguments,
    executor_settings,
    run_trials,
)
from udarts.app.trials.trial import KINDS, Attempt, Step, Trial, TrialError, TrialResult, run_attempt, trial_finished

__all__ = [
    "BACKENDS", "RAY_MISSING", "ExecutorSettings", "TrialExecutor", "add_executor_arguments", "executor_settings", "run_trials",
    "KINDS", "Attempt", "Step", "Trial", "TrialError", "TrialResult", "run_attempt", "trial_finished",
]
