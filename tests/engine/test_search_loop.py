"""The search loop and its parts: the loop calls every part's hooks in the list's order, a part's
loss terms join the alpha loss, its state rides in the checkpoint, and a new part needs nothing
but its class and an entry in ``udarts.search.parts.PARTS``."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from udarts.cli import main
from udarts.config import Config
from udarts.engine.layout import LAST_CHECKPOINT, METRICS_LOG
from udarts.engine.searcher import SearchBatches, search
from udarts.losses import dice_loss
from udarts.search import parts as registry
from udarts.search.darts import DartsStrategy
from udarts.search.loop import SearchContext, SearchPart, alpha_penalty, collect_state
from udarts.search.supernet import SuperNet, search_op_names

from .test_resume import TINY, assert_same_state


class Recorder(SearchPart):
    """Notes every hook it sees; its loss term pulls the first alpha down."""

    def __init__(self, name, calls, alphas=None):
        self.name, self.calls, self.alphas = name, calls, alphas

    def on_epoch_start(self, epoch):
        self.calls.append((self.name, "start", epoch.index, epoch.update_alphas))

    def loss_terms(self):
        self.calls.append((self.name, "loss"))
        return {} if self.alphas is None else {"pull": 100.0 * self.alphas[0][0, 0]}

    def on_step(self, epoch, batch, out):
        self.calls.append((self.name, "step", epoch.index, epoch.steps, batch[1][0].shape[0]))

    def on_epoch_end(self, epoch):
        self.calls.append((self.name, "end", epoch.index))
        epoch.record[self.name] = epoch.steps


def tiny_loop(parts_of):
    torch.manual_seed(0)
    model = SuperNet(3, 2, 4, num_nodes=1, op_names=search_op_names(("conv_3x3", "identity")))
    data = TensorDataset(torch.randn(8, 3, 16, 16), torch.randint(0, 2, (8, 16, 16)))
    loaders = [DataLoader(data, batch_size=4, shuffle=True, generator=torch.Generator()) for _ in range(2)]
    parts = parts_of(model)
    strategy = DartsStrategy(model, dice_loss, torch.optim.Adam(model.weight_parameters(), lr=1e-3),
                             torch.optim.Adam(model.arch_parameters(), lr=0.1), alpha_penalty=alpha_penalty(parts))
    return model, strategy, SearchBatches(*loaders, torch.device("cpu"), seed=0), parts


def test_the_loop_calls_every_part_in_order_and_adds_their_loss_terms_to_the_alpha_loss():
    calls = []
    model, strategy, batches, parts = tiny_loop(lambda model: [Recorder("a", calls, model.alpha_parameters()),
                                                               Recorder("b", calls)])
    before = model.alpha_parameters()[0].detach().clone()
    search(model, strategy, batches, parts, epochs=2, warmup_epochs=1)
    hooks = [call for call in calls if call[1] != "loss"]
    assert hooks == [
        ("a", "start", 0, False), ("b", "start", 0, False),
        ("a", "step", 0, 1, 4), ("b", "step", 0, 1, 4), ("a", "step", 0, 2, 4), ("b", "step", 0, 2, 4),
        ("a", "end", 0), ("b", "end", 0),
        ("a", "start", 1, True), ("b", "start", 1, True),
        ("a", "step", 1, 1, 4), ("b", "step", 1, 1, 4), ("a", "step", 1, 2, 4), ("b", "step", 1, 2, 4),
        ("a", "end", 1), ("b", "end", 1),
    ]
    first_alpha_step = calls.index(("a", "start", 1, True))
    assert ("a", "loss") not in calls[:first_alpha_step] and ("a", "loss") in calls[first_alpha_step:]
    after = model.alpha_parameters()[0].detach()
    assert after[0, 0] < before[0, 0] - 0.1  # two Adam steps at 0.1 pulled the penalised alpha down


def test_the_loss_terms_sum_and_the_states_must_not_clash():
    class Term(SearchPart):
        def __init__(self, value, state):
            self.value, self.state = value, state

        def loss_terms(self):
            return {"term": torch.tensor(self.value)}

        def state_dict(self):
            return dict(self.state)

    assert alpha_penalty([SearchPart()]) is None
    assert float(alpha_penalty([Term(1.5, {}), SearchPart(), Term(2.0, {})])()) == 3.5
    assert collect_state([Term(0, {"a": 1}), Term(0, {"b": 2})]) == {"a": 1, "b": 2}
    with pytest.raises(ValueError, match="'a'"):
        collect_state([Term(0, {"a": 1}), Term(0, {"a": 2})])


def test_the_default_config_is_plain_darts_without_parts():
    model = SuperNet(3, 2, 4, num_nodes=1)
    config = Config().updated({"model": {"width": 4, "num_nodes": 1}}, "test")
    assert registry.build_parts(config, model, SearchContext(steps_per_epoch=1)) == []
    assert all(callable(build) for build in registry.PARTS.values())


class AlphaNorm(SearchPart):
    """A new penalty, as a user would write it: weight x the squared alphas, logged every epoch,
    with a counter of the epochs it saw kept over a resume."""

    @classmethod
    def from_config(cls, config, model, context):
        return cls(model.alpha_parameters(), 0.5)

    def __init__(self, alphas, weight):
        self.alphas, self.weight, self.epochs_seen = alphas, weight, 0

    def loss_terms(self):
        return {"alpha_norm": self.weight * sum((alpha ** 2).sum() for alpha in self.alphas)}

    def on_epoch_end(self, epoch):
        self.epochs_seen += 1
        with torch.no_grad():
            epoch.record["alpha_norm"] = float(self.loss_terms()["alpha_norm"])
        epoch.record["epochs_seen"] = self.epochs_seen

    def state_dict(self):
        return {"alpha_norm_epochs_seen": self.epochs_seen}

    def load_state_dict(self, state):
        self.epochs_seen = state["alpha_norm_epochs_seen"]


@pytest.mark.slow
def test_a_new_penalty_is_a_class_and_a_registry_entry(tmp_path, monkeypatch):
    search_args = ["search", *TINY, "--epochs", "2"]
    assert main([*search_args, "--out", str(tmp_path / "plain")]) == 0
    monkeypatch.setitem(registry.PARTS, "alpha_norm", AlphaNorm.from_config)
    assert main([*search_args, "--out", str(tmp_path / "full")]) == 0
    assert main(["search", *TINY, "--epochs", "1", "--out", str(tmp_path / "cut")]) == 0
    assert main(["search", "--resume", str(tmp_path / "cut"), "--epochs", "2", "--no-progress"]) == 0
    logs = {run: [json.loads(line) for line in (tmp_path / run / METRICS_LOG).read_text().splitlines()]
            for run in ("plain", "full", "cut")}
    assert "alpha_norm" not in logs["plain"][0]
    assert [record["epochs_seen"] for record in logs["full"]] == [1, 2] == [record["epochs_seen"] for record in logs["cut"]]
    assert [record["alpha_norm"] for record in logs["full"]] == [record["alpha_norm"] for record in logs["cut"]]
    states = {run: torch.load(tmp_path / run / LAST_CHECKPOINT, weights_only=False) for run in ("plain", "full", "cut")}
    assert states["full"]["alpha_norm_epochs_seen"] == 2 and "alpha_norm_epochs_seen" not in states["plain"]
    assert_same_state(states["full"]["model"], states["cut"]["model"])
    shrunk = [float((states[run]["model"]["cells.0.alphas"] ** 2).sum()) for run in ("plain", "full")]
    assert shrunk[1] < shrunk[0]  # the penalty reached the alpha loss
