"""The alpha-gradient signal-to-noise ratio: exact on a toy model, and on a real supernet."""

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from udarts.search.signal import alpha_gradient_snr
from udarts.search.supernet import SuperNet


class Toy(nn.Module):
    """loss = alpha * mean(image) summed: the gradient of each alpha is the batch's image mean."""

    def __init__(self) -> None:
        super().__init__()
        self.alphas = nn.Parameter(torch.zeros(3))
        self.slots = [SimpleNamespace(name="C1")]

    def alpha_parameters(self):
        return [self.alphas]

    def forward(self, images):
        return self.alphas * images.mean()


def test_snr_is_the_mean_over_the_std_of_the_gradient():
    means = torch.tensor([0.5, 1.5, 0.5, 1.5])  # mean 1, sample std 0.5774
    batches = [(torch.full((2, 4), float(value)), torch.zeros(2)) for value in means]
    signal = alpha_gradient_snr(Toy(), lambda logits, masks: logits.sum(), batches)
    assert signal.batches == 4 and signal.median_snr == pytest.approx(1 / means.std().item(), rel=1e-6)
    assert signal.cell_median_snr == {"C1": pytest.approx(signal.median_snr)}
    assert signal.expected_drift(6.0) == pytest.approx(6.0 * signal.median_snr)
    assert signal.noise_floor == pytest.approx(0.6745 / 2)
    with pytest.raises(ValueError, match="at least 2 batches"):
        alpha_gradient_snr(Toy(), lambda logits, masks: logits.sum(), batches[:1])


@pytest.mark.slow
def test_snr_of_a_supernet_covers_every_cell():
    torch.manual_seed(0)
    model = SuperNet(3, 2, width=4)
    batches = [(torch.randn(2, 3, 16, 16), torch.randint(0, 2, (2, 16, 16))) for _ in range(3)]
    signal = alpha_gradient_snr(model, nn.CrossEntropyLoss(), batches)
    assert sorted(signal.cell_median_snr) == [f"C{i}" for i in range(1, 9)]
    assert 0 < signal.median_snr <= signal.upper_snr < float("inf")


def test_coupled_weight_decay_stops_adam_at_the_decay_ceiling():
    """The claim behind udarts's default alpha_weight_decay of 0: with Adam's coupled decay an alpha
    whose gradient has mean g stalls at |g| / decay, however far its travel would take it."""
    gradient = 2e-4  # CamVid's typical alpha gradient (BENCHMARKS.md)
    batches = [(torch.full((2, 4), value), torch.zeros(2)) for value in (gradient / 2, 3 * gradient / 2)]
    signal = alpha_gradient_snr(Toy(), lambda logits, masks: logits.sum(), batches)
    assert signal.median_gradient == pytest.approx(gradient)
    assert signal.decay_ceiling(1e-3) == pytest.approx(0.2) and signal.decay_ceiling(0.0) == float("inf")

    def final_alpha(weight_decay: float) -> float:
        """The alpha over the last 50 of 400 Adam steps (a travel of 20 logits), averaged."""
        alpha = nn.Parameter(torch.zeros(()))
        optimizer = torch.optim.Adam([alpha], lr=0.05, betas=(0.5, 0.999), weight_decay=weight_decay)
        values = []
        for _ in range(400):
            optimizer.zero_grad()
            (gradient * alpha).backward()  # the loss falls as alpha falls: the signal pulls it down
            optimizer.step()
            values.append(alpha.item())
        return sum(values[-50:]) / 50

    assert final_alpha(1e-3) == pytest.approx(-signal.decay_ceiling(1e-3), abs=0.03)
    assert final_alpha(0.0) == pytest.approx(-18.75, rel=0.02)  # still travelling: 0.05 per step


def test_the_search_puts_no_decay_on_the_alphas_unless_asked():
    from udarts.builders import build_strategy, build_supernet
    from udarts.config import Config

    def alpha_decay(config: Config) -> float:
        model = build_supernet(config, 2)
        return build_strategy(config, model, 4, None, torch.device("cpu")).alpha_optimizer.param_groups[0]["weight_decay"]

    config = Config().updated({"model": {"width": 4, "num_nodes": 1}}, "test")
    assert config.search.alpha_weight_decay == 0 and alpha_decay(config) == 0
    assert alpha_decay(config.updated({"search": {"alpha_weight_decay": 1e-3}}, "test")) == 1e-3
