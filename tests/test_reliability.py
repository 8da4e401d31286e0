"""Nothing lost, nothing silent (issue 10): kills at checkpoint writes, torn logs, a full disk,
divergence, resume flags, and one line (exit 2) naming the key or file for every bad value.

Everything runs through ``udarts.cli.main`` on tiny synthetic runs (16x16 images, width 4)."""

import errno
import json
import os
import shutil

import pytest
import torch

import udarts.engine.runs as runs
import udarts.io
from udarts.cli import build_parser, main
from udarts.config import resolve
from udarts.engine.layout import (
    ALPHAS_LOG,
    BEST_CHECKPOINT,
    CONFIG_FILE,
    GENOTYPE_FILE,
    LAST_CHECKPOINT,
    METRICS_LOG,
    derived_genotype_name,
)
from udarts.engine.runs import BEST_PENDING, Run
from udarts.engine.trainer import cosine_lr

TINY = ["--no-progress", "--image-size", "16x16", "--batch-size", "4", "--width", "4",
        "--set", "data.num_samples=24", "--set", "model.num_nodes=2", "--set", "model.ops=[conv_3x3,identity]"]


def read_log(run_dir, name=METRICS_LOG):
    return [json.loads(line) for line in (run_dir / name).read_text().splitlines()]


def load(path):
    return torch.load(path, weights_only=False)


def one_line_error(capsys, *needles):
    """The run's stderr ends in exactly one error line, naming every needle."""
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("udarts ")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def genotype(tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "run"
    assert main(["search", *TINY, "--epochs", "1", "--out", str(out)]) == 0
    return str(out / GENOTYPE_FILE)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, genotype):
    """A finished 2-epoch training run (cosine schedule)."""
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", *TINY, "--genotype", genotype, "--epochs", "2", "--set", "train.optimizer=adam",
                 "--set", "train.lr=0.01", "--out", str(out)]) == 0
    return out


def train_args(genotype, epochs=3):
    return ["train", *TINY, "--genotype", genotype, "--epochs", str(epochs), "--set", "train.optimizer=adam",
            "--set", "train.lr=0.01"]


# ---- every bad value: one line, exit 2, the key named ----------------------------------------


@pytest.mark.parametrize(
    "args, needle",
    [
        (["search", "--batch-size", "0"], "data.batch_size"),
        (["search", "--batch-size", "-2"], "data.batch_size"),
        (["search", "--width", "0"], "model.width"),
        (["search", "--width", "-4"], "model.width"),
        (["search", "--epochs", "0"], "search.epochs"),
        (["search", "--epochs", "-1"], "search.epochs"),
        (["train", "--epochs", "0"], "train.epochs"),
        (["search", "--epochs", "2", "--set", "search.warmup_epochs=2"], "search.warmup_epochs"),
        (["train", "--set", "train.optimizer=adamax"], "train.optimizer"),
        (["search", "--set", "search.weight_optimizer=lbfgs"], "search.weight_optimizer"),
        (["train", "--set", "train.loss=focal"], "train.loss"),
        (["search", "--set", "search.loss=focal"], "search.loss"),
        (["train", "--set", "train.scheduler=step"], "train.scheduler"),
        (["search", "--set", "search.order=third"], "search.order"),
        (["train", "--model", "resnet"], "train.model"),
        (["train", "--model", "unet", "--set", "train.model_scale=huge"], "train.model_scale"),
        (["search", "--set", "model.ops=[]"], "model.ops"),
        (["search", "--set", "model.ops=[conv_7x7]"], "model.ops"),
        (["search", "--set", "search.top_k=0"], "search.top_k"),
        (["train", "--set", "train.lr=-0.1"], "train.lr"),
        (["search", "--set", "search.weight_lr=-1"], "search.weight_lr"),
        (["search", "--num-workers", "-1"], "data.num_workers"),
        (["search", "--set", "data.num_samples=0"], "data.num_samples"),
        (["search", "--device", "foo"], "device"),
        (["search", "--set", "a.b=[1,"], "a.b=[1,"),
        (["search", "--set", "data.on_bad_sample=foo"], "data.on_bad_sample"),
        (["search", "--set", "data.target=foo"], "data.target"),
        (["search", "--set", "data.target=trimap"], "data.target"),  # synthetic has no trimap
        (["train", "--data", "camvid", "--root", "/nonexistent", "--set", "data.on_bad_sample=foo"], "data.on_bad_sample"),
        (["train", "--set", "train.select_split=holdout"], "train.select_split"),
        (["train", "--set", "model.flops_budget=-1"], "model.flops_budget"),
        (["train", "--latency-budget", "0"], "model.latency_budget"),
        (["search", "--set", "search.alpha_travel=0"], "search.alpha_travel"),
        (["search", "--set", "search.beta_decay=-1"], "search.beta_decay"),
        (["search", "--set", "search.max_identity=-1"], "search.max_identity"),
        (["search", "--set", "data.holdout=3"], "data.holdout"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(tmp_path, capsys, args, needle):
    out = tmp_path / "run"
    assert main([*args, "--no-progress", "--out", str(out)]) == 2
    one_line_error(capsys, needle)
    assert not out.exists()  # checked before a run folder is made


def test_yaml_exponent_floats_are_numbers(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("train:\n  lr: 1e-3\n  weight_decay: 5E-4\nsearch:\n  unrolled_lr: 1e-2\n  epochs: 3\n")
    config = resolve(str(config_file))
    assert config.train.lr == 1e-3 and config.train.weight_decay == 5e-4
    assert config.search.unrolled_lr == 1e-2 and config.search.epochs == 3


def test_debug_shows_the_traceback(tmp_path):
    from udarts.config import ConfigError

    with pytest.raises(ConfigError, match="data.batch_size"):
        main(["search", "--batch-size", "0", "--debug", "--out", str(tmp_path / "run")])
    with pytest.raises(ConfigError, match="data.batch_size"):
        main(["--debug", "search", "--batch-size", "0", "--out", str(tmp_path / "run")])


def test_every_flag_has_help_and_every_command_a_description_and_demo_offers_no_resume():
    parser = build_parser()
    commands = next(action for action in parser._actions if action.choices and "search" in action.choices)
    for name, subparser in commands.choices.items():
        assert subparser.description, name
        for action in subparser._actions:
            assert action.help, f"udarts {name} {action.option_strings or action.dest}"
    assert "--resume" not in commands.choices["demo"].format_help()
    with pytest.raises(SystemExit):
        main(["demo", "--resume", "somewhere"])


# ---- bad files: checkpoints, genotypes, run folders --------------------------------------------


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory, trained):
    folder = tmp_path_factory.mktemp("bad")
    torch.save([1, 2], folder / "list.pt")
    torch.save({"epoch": 1, "weights": {}}, folder / "foreign.pt")
    (folder / "empty.pt").write_bytes(b"")
    (folder / "truncated.pt").write_bytes((trained / BEST_CHECKPOINT).read_bytes()[:200])
    (folder / "text.pt").write_text("hello")
    return folder


@pytest.mark.parametrize("name", ["list.pt", "foreign.pt", "empty.pt", "truncated.pt", "text.pt"])
@pytest.mark.parametrize("command", ["eval", "derive", "predict", "resume"])
def test_bad_checkpoints_are_named_in_one_line(tmp_path, capsys, bad_checkpoints, trained, name, command):
    path = bad_checkpoints / name
    if command == "eval":
        args = ["eval", str(path), "--no-progress"]
    elif command == "derive":
        args = ["derive", str(path), "--out", str(tmp_path / "g.json")]
    elif command == "predict":
        args = ["predict", str(path), str(bad_checkpoints), "--out", str(tmp_path / "pred"), "--no-progress"]
    else:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        shutil.copy(trained / CONFIG_FILE, run_dir / CONFIG_FILE)
        shutil.copy(path, run_dir / LAST_CHECKPOINT)
        path = run_dir / LAST_CHECKPOINT
        args = ["train", "--resume", str(run_dir), "--no-progress"]
    assert main(args) == 2
    one_line_error(capsys, str(path))


def test_a_search_checkpoint_is_refused_by_eval_and_a_train_checkpoint_by_derive(tmp_path, capsys, trained, genotype):
    search_last = os.path.join(os.path.dirname(genotype), LAST_CHECKPOINT)
    assert main(["eval", search_last, "--no-progress"]) == 2
    one_line_error(capsys, "search", "expected a train checkpoint")
    assert main(["derive", str(trained / LAST_CHECKPOINT), "--out", str(tmp_path / "g.json")]) == 2
    one_line_error(capsys, "expected a search checkpoint")


@pytest.mark.parametrize("value", [2.5, "4", True])
def test_a_non_integer_expand_ratio_in_a_genotype_is_named(tmp_path, capsys, genotype, value):
    data = json.loads(open(genotype).read())
    data["op_settings"]["expand_ratio"] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    assert main(train_args(str(bad), 1) + ["--out", str(tmp_path / "run")]) == 2
    one_line_error(capsys, "op_settings.expand_ratio", "integer")
    assert not (tmp_path / "run").exists()


def test_out_that_is_a_file_or_under_a_file_is_refused_before_the_data(tmp_path, capsys, monkeypatch, genotype):
    import udarts.experiment as experiment

    def no_data(*args, **kwargs):
        raise AssertionError("data was read before --out was checked")

    monkeypatch.setattr(experiment, "build_split", no_data)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out in (a_file, a_file / "run"):
        assert main(train_args(genotype, 1) + ["--out", str(out)]) == 2
        one_line_error(capsys, str(out), "is a file")
        assert main(["search", *TINY, "--epochs", "1", "--out", str(out)]) == 2
        one_line_error(capsys, "is a file")


def test_out_in_an_unwritable_folder_is_refused(tmp_path, capsys, monkeypatch, genotype):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    if os.geteuid() == 0:  # root may write anywhere: let the folder's permission bits decide
        monkeypatch.setattr(runs.os, "access", lambda path, mode: not str(path).startswith(str(locked)))
    try:
        assert main(train_args(genotype, 1) + ["--out", str(locked / "run")]) == 2
        one_line_error(capsys, str(locked), "not writable")
        assert not (locked / "run").exists()
    finally:
        locked.chmod(0o700)


def test_eval_refuses_an_image_size_the_network_cannot_take(capsys, trained):
    assert main(["eval", str(trained / BEST_CHECKPOINT), "--no-progress", "--image-size", "36x36"]) == 2
    one_line_error(capsys, "data.image_size", "36x36")


def test_eval_applies_config_and_set_and_names_a_missing_config(tmp_path, capsys, trained):
    assert main(["eval", str(trained / BEST_CHECKPOINT), "--no-progress", "--config", str(tmp_path / "nope.yaml")]) == 2
    one_line_error(capsys, "nope.yaml")
    config_file = tmp_path / "eval.yaml"
    config_file.write_text("data:\n  num_samples: 64\n")  # synthetic val: a quarter of num_samples
    assert main(["eval", str(trained / BEST_CHECKPOINT), "--no-progress", "--config", str(config_file),
                 "--json", str(tmp_path / "a.json")]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["images"] == 16
    assert main(["eval", str(trained / BEST_CHECKPOINT), "--no-progress", "--config", str(config_file),
                 "--set", "data.num_samples=48", "--json", str(tmp_path / "b.json")]) == 0
    assert json.loads((tmp_path / "b.json").read_text())["images"] == 12


# ---- kills at the checkpoint writes ----------------------------------------------------------


@pytest.mark.parametrize("moment", ["while writing best", f"after {LAST_CHECKPOINT}, before {BEST_CHECKPOINT} is renamed"])
def test_a_kill_at_the_best_checkpoint_write_leaves_best_pt_matching_its_record(tmp_path, monkeypatch, genotype, moment):
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main(train_args(genotype) + ["--out", str(full)]) == 0
    mious = [record["val_miou"] for record in read_log(full)]
    best_epochs = [i + 1 for i, miou in enumerate(mious) if miou > max(mious[:i], default=-1)]
    target = best_epochs[-1]
    assert target >= 2, mious  # the kill must hit an epoch that replaces an earlier best

    original_save = Run.save

    def killed_save(self, state, name):
        if state["epoch"] == target and name == BEST_PENDING and moment == "while writing best":
            (self.path / (name + ".tmp")).write_bytes(b"partial")
            raise KeyboardInterrupt
        path = original_save(self, state, name)
        if state["epoch"] == target and name == LAST_CHECKPOINT and moment.startswith("after"):
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Run, "save", killed_save)
    assert main(train_args(genotype) + ["--out", str(cut)]) == 130
    monkeypatch.undo()
    # whatever the moment, the folder on disk is consistent once resumed
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    last, best = load(cut / LAST_CHECKPOINT), load(cut / BEST_CHECKPOINT)
    assert last["epoch"] == 3 and best["epoch"] == last["best_epoch"] == target
    assert best["val_miou"] == last["best_miou"] == max(mious)
    for key, value in load(full / BEST_CHECKPOINT)["model"].items():
        torch.testing.assert_close(best["model"][key], value, rtol=0, atol=0, msg=key)
    assert not list(cut.glob("*.tmp")) and not (cut / BEST_PENDING).exists()
    assert [record["epoch"] for record in read_log(cut)] == [1, 2, 3]


def test_a_kill_before_the_first_checkpoint_restarts_on_resume(tmp_path, monkeypatch, capsys, genotype):
    cut = tmp_path / "cut"
    original_log = Run.log

    def log_then_die(self, record, step):
        original_log(self, record, step)
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "log", log_then_die)
    assert main(["search", *TINY, "--epochs", "2", "--out", str(cut)]) == 130
    monkeypatch.undo()
    assert not (cut / LAST_CHECKPOINT).exists() and (cut / CONFIG_FILE).is_file()
    capsys.readouterr()
    assert main(["search", *TINY, "--epochs", "2", "--out", str(cut)]) == 2
    one_line_error(capsys, "--resume")
    assert main(["search", "--resume", str(cut), "--no-progress"]) == 0
    assert "starting it again from epoch 0" in capsys.readouterr().err
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 2
    assert [record["epoch"] for record in read_log(cut)] == [1, 2]
    assert [record["epoch"] for record in read_log(cut, ALPHAS_LOG)] == [1, 2]


# ---- a full disk and torn logs ---------------------------------------------------------------


class _FullDisk:
    """A file whose write stores half of the text, then fails as a full disk does (no file name)."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        self.handle.write(text[: len(text) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def fill_disk_at(monkeypatch, file_name, epoch):
    """The ``epoch``-th append to ``file_name`` meets a full disk."""
    calls = {"count": 0}

    def fake_open(path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if os.path.basename(path) == file_name and "a" in mode:
            calls["count"] += 1
            if calls["count"] == epoch:
                return _FullDisk(handle)
        return handle

    monkeypatch.setattr(udarts.io, "open", fake_open, raising=False)  # append_line lives in udarts.io


@pytest.mark.parametrize("log_name", [METRICS_LOG, ALPHAS_LOG])
def test_a_full_disk_during_a_log_append_is_named_and_the_torn_line_dropped_on_resume(tmp_path, monkeypatch, capsys, log_name):
    search = ["search", *TINY, "--epochs", "3"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert main([*search, "--out", str(full)]) == 0
    fill_disk_at(monkeypatch, log_name, 2)
    capsys.readouterr()
    assert main([*search, "--out", str(cut)]) == 2
    one_line_error(capsys, "disk full", str(cut / log_name), "mounted at")
    monkeypatch.undo()
    assert not (cut / log_name).read_text().endswith("\n")  # a torn last line
    assert main(["search", "--resume", str(cut), "--no-progress"]) == 0
    assert f"{cut / log_name}: dropped line 2" in capsys.readouterr().err
    assert [record["epoch"] for record in read_log(cut)] == [1, 2, 3]
    assert [record["epoch"] for record in read_log(cut, ALPHAS_LOG)] == [1, 2, 3]
    assert (cut / GENOTYPE_FILE).read_text() == (full / GENOTYPE_FILE).read_text()


def test_a_full_disk_during_a_checkpoint_write_names_the_file_and_leaves_the_previous_one(tmp_path, monkeypatch, capsys, genotype):
    cut = tmp_path / "cut"
    original = torch.save

    def full_at_epoch_2(state, target, *args, **kwargs):
        if isinstance(state, dict) and state.get("epoch") == 2:
            with open(target, "wb") as handle:
                handle.write(b"half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(state, target, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_epoch_2)
    assert main(train_args(genotype) + ["--out", str(cut)]) == 2
    monkeypatch.undo()
    one_line_error(capsys, "disk full", "mounted at", str(cut))
    assert not list(cut.glob("*.tmp"))  # the partial file is removed, freeing its space
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 1
    assert main(["train", "--resume", str(cut), "--no-progress"]) == 0
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 3


def test_a_torn_line_in_the_middle_of_a_log_is_dropped_with_a_note(tmp_path, capsys):
    run = Run(tmp_path / "run", {"seed": 0})
    (run.path / METRICS_LOG).write_text('{"epoch": 1}\n{"epo\n{"epoch": 2}\n{"epoch": 3, "x"')
    notes = run.truncate_logs(2)
    assert [record["epoch"] for record in run.read_metrics()] == [1, 2]
    assert len(notes) == 2 and "dropped line 2" in notes[0] and "dropped line 4" in notes[1]


# ---- divergence ------------------------------------------------------------------------------


def test_training_divergence_stops_saves_nothing_of_it_and_resumes_from_the_last_good_epoch(tmp_path, capsys, genotype):
    cut = tmp_path / "cut"
    assert main(train_args(genotype, 1) + ["--out", str(cut)]) == 0
    good = load(cut / BEST_CHECKPOINT)
    capsys.readouterr()
    assert main(["train", "--resume", str(cut), "--epochs", "3", "--set", "train.lr=1e9", "--no-progress"]) == 2
    one_line_error(capsys, "diverged in epoch 2", "train.lr", f"{LAST_CHECKPOINT} keeps epoch 1")
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 1 and load(cut / BEST_CHECKPOINT)["epoch"] == good["epoch"] == 1
    assert [record["epoch"] for record in read_log(cut)] == [1]
    assert main(["train", "--resume", str(cut), "--set", "train.lr=0.01", "--no-progress"]) == 0
    assert [record["epoch"] for record in read_log(cut)] == [1, 2, 3]
    assert all(record["val_loss"] is not None for record in read_log(cut))


def test_nan_loss_from_the_first_step_is_one_line_and_the_folder_restarts(tmp_path, capsys, genotype):
    cut = tmp_path / "cut"
    assert main(train_args(genotype, 2) + ["--set", "train.lr=1.0e+9", "--set", "train.optimizer=sgd", "--out", str(cut)]) == 2
    one_line_error(capsys, "diverged in epoch 1", "train.lr")
    assert not (cut / BEST_CHECKPOINT).exists() and not (cut / LAST_CHECKPOINT).exists()
    assert main(["train", "--resume", str(cut), "--set", "train.lr=0.01", "--no-progress"]) == 0
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 2


@pytest.mark.parametrize("key", ["search.weight_lr", "search.alpha_lr"])
def test_search_divergence_is_refused_not_turned_into_a_genotype(tmp_path, capsys, key):
    out = tmp_path / "run"
    assert main(["search", *TINY, "--epochs", "2", "--set", f"{key}=1e9", "--out", str(out)]) == 2
    one_line_error(capsys, "diverged in epoch 1", key)
    assert not (out / GENOTYPE_FILE).exists() and not (out / LAST_CHECKPOINT).exists()


# ---- what --resume may change ----------------------------------------------------------------


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, capsys, trained):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    before = (run_dir / CONFIG_FILE).read_text()
    for flags, key in ((["--batch-size", "8"], "data.batch_size"), (["--set", "train.optimizer=sgd"], "train.optimizer"),
                       (["--width", "6"], "model.width"), (["--epochs", "1"], "train.epochs"),
                       (["--out", str(tmp_path / "elsewhere")], "--out")):
        assert main(["train", "--resume", str(run_dir), "--no-progress", *flags]) == 2
        one_line_error(capsys, key)
    assert (run_dir / CONFIG_FILE).read_text() == before
    # the same flags as the run's own are not a change
    assert main(["train", "--resume", str(run_dir), "--no-progress", "--batch-size", "4", "--width", "4"]) == 0


def test_a_longer_cosine_run_stretches_the_schedule_and_records_it(tmp_path, trained):
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    assert main(["train", "--resume", str(run_dir), "--epochs", "4", "--no-progress"]) == 0
    log = read_log(run_dir)
    assert [record["epoch"] for record in log] == [1, 2, 3, 4]
    assert log[2]["lr"] == pytest.approx(cosine_lr(0.01, 0.0, 2, 4)) and log[2]["lr"] > 0
    assert log[3]["lr"] == pytest.approx(cosine_lr(0.01, 0.0, 3, 4))
    assert Run(run_dir, resume=True).config()["train"]["epochs"] == 4
    assert load(run_dir / LAST_CHECKPOINT)["scheduler"]["T_max"] == 4


def test_value_tables_match_the_registries():
    import udarts.config as config
    from udarts.baselines import BASELINES
    from udarts.baselines.scales import SCALES
    from udarts.data.factory import DATASETS
    from udarts.data.pairs import BAD_SAMPLE_POLICIES
    from udarts.data.pets import TARGETS
    from udarts.engine.trainer import OPTIMIZERS, SCHEDULERS
    from udarts.losses import LOSSES

    assert set(config.MODELS) == {"searchnet", *BASELINES}
    assert set(config.MODEL_SCALES) == set(SCALES) and set(config.DATASETS) == set(DATASETS)
    assert set(config.BAD_SAMPLE_POLICIES) == set(BAD_SAMPLE_POLICIES) and set(config.PETS_TARGETS) == set(TARGETS)
    assert set(config.OPTIMIZERS) == set(OPTIMIZERS) and set(config.SCHEDULERS) == set(SCHEDULERS)
    assert set(config.LOSSES) == set(LOSSES)


def test_search_divergence_resumes_from_the_last_good_epoch_with_a_lower_rate(tmp_path, capsys):
    cut = tmp_path / "cut"
    assert main(["search", *TINY, "--epochs", "2", "--set", "search.warmup_epochs=1", "--out", str(cut)]) == 0
    genotype_before = (cut / GENOTYPE_FILE).read_text()
    assert main(["search", "--resume", str(cut), "--epochs", "3", "--set", "search.weight_lr=1e9", "--no-progress"]) == 2
    one_line_error(capsys, "diverged in epoch 3", "search.weight_lr", f"{LAST_CHECKPOINT} keeps epoch 2")
    assert load(cut / LAST_CHECKPOINT)["epoch"] == 2 and (cut / GENOTYPE_FILE).read_text() == genotype_before
    assert main(["search", "--resume", str(cut), "--set", "search.weight_lr=0.002", "--no-progress"]) == 0
    last = load(cut / LAST_CHECKPOINT)
    assert last["epoch"] == 3 and last["weight_optimizer"]["param_groups"][0]["lr"] == 0.002
    assert [record["epoch"] for record in read_log(cut)] == [1, 2, 3]


def test_derive_with_other_settings_leaves_the_searchs_genotype_alone(tmp_path, genotype):
    run_dir = tmp_path / "search"
    shutil.copytree(os.path.dirname(genotype), run_dir)
    own = (run_dir / GENOTYPE_FILE).read_text()
    assert main(["derive", str(run_dir), "--top-k", "1"]) == 0
    assert (run_dir / GENOTYPE_FILE).read_text() == own and (run_dir / derived_genotype_name(1, None)).is_file()


def test_torchs_short_write_on_a_full_disk_is_reported_as_disk_full(tmp_path, monkeypatch):
    """torch.save reports a short write as RuntimeError ("unexpected pos"), not as OSError."""
    import shutil as shutil_module
    from collections import namedtuple

    from udarts.cli import error_line
    from udarts.engine.runs import save_checkpoint

    def short_write(state, target):
        with open(target, "wb") as handle:
            handle.write(b"part")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(100, 100, 0))
    with pytest.raises(OSError) as raised:
        save_checkpoint({"epoch": 1}, tmp_path / LAST_CHECKPOINT)
    assert raised.value.errno == errno.ENOSPC and raised.value.filename == str(tmp_path / LAST_CHECKPOINT)
    assert not list(tmp_path.iterdir())
    message, code = error_line(raised.value)
    assert code == 2 and message.startswith("disk full") and str(tmp_path / LAST_CHECKPOINT) in message
