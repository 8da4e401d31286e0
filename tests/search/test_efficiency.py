"""Efficiency switches: activation checkpointing, mixed precision, channels-last, torch.compile."""

import copy

import pytest
import torch

from udarts.efficiency import MixedPrecision, compile_model, to_channels_last
from udarts.losses import cross_entropy, dice_loss
from udarts.search.darts import DartsStrategy
from udarts.search.supernet import SuperNet, search_op_names

from .test_supernet import batch

OPS = search_op_names(("conv_3x3", "mbconv_3x3", "identity"))


def supernet(**options):
    torch.manual_seed(0)
    return SuperNet(3, 3, 4, num_nodes=2, op_names=OPS, **options)


def loss_and_grads(model, data):
    images, masks = data
    loss = dice_loss(model(images), masks)
    return loss, torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)  # gdas: unsampled ops


@pytest.mark.slow
@pytest.mark.parametrize("granularity", ["checkpoint_cells", "checkpoint_edges"])
@pytest.mark.parametrize("mode", ["darts", "gdas", "pc_darts"])
def test_checkpointing_gives_the_same_loss_and_gradients(mode, granularity):
    options = {"partial_channel_k": 2} if mode == "pc_darts" else {}
    plain, checkpointed = supernet(mode=mode, **options), supernet(mode=mode, **options, **{granularity: True})
    loss, grads = loss_and_grads(plain, batch())
    loss_checkpointed, grads_checkpointed = loss_and_grads(checkpointed, batch())
    torch.testing.assert_close(loss_checkpointed, loss)
    assert [g is None for g in grads_checkpointed] == [g is None for g in grads]  # the same sampled ops
    for a, b in zip(grads_checkpointed, grads):
        if b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def sgd_step(model, precision=None, data=(batch(seed=1), batch(seed=2))):
    strategy = DartsStrategy(model, lambda logits, target: cross_entropy(logits, target),
                             torch.optim.SGD(model.weight_parameters(), lr=0.1),
                             torch.optim.SGD(model.arch_parameters(), lr=0.1), precision=precision)
    before = [alpha.detach().clone() for alpha in model.arch_parameters()]
    out = strategy.step(*data)
    return out, [alpha.detach() - old for alpha, old in zip(model.arch_parameters(), before)], strategy


def larger_batch(seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 32, 32, generator=generator), torch.randint(0, 3, (4, 32, 32), generator=generator)


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_step_is_the_autocast_gradient_unscaled(amp):
    """The alpha update equals -lr * the gradient of the loss computed under autocast (fp16: of
    the loss times the scale, divided by it). Width 8 at 32x32, where fp16 at the default scale
    does not overflow (on inf the scaler would skip the step)."""
    precision = MixedPrecision(amp, "cpu")
    torch.manual_seed(0)
    model = SuperNet(3, 3, 8, num_nodes=2, op_names=OPS)
    images, masks = larger_batch(2)
    with precision.autocast():
        logits = model(images)
        assert logits.dtype == precision.dtype  # the convolutions ran in low precision
        loss = cross_entropy(logits, masks)
    scale = 65536.0 if amp == "fp16" else 1.0
    expected = [-0.1 * grad / scale for grad in torch.autograd.grad(loss * scale, model.arch_parameters())]

    torch.manual_seed(0)
    model = SuperNet(3, 3, 8, num_nodes=2, op_names=OPS)
    out, update, strategy = sgd_step(model, MixedPrecision(amp, "cpu"), (larger_batch(1), larger_batch(2)))
    assert torch.isfinite(out["train_loss"]) and out["train_loss"].dtype == torch.float32
    assert (strategy.grad_scaler is not None) == (amp == "fp16")
    for got, want in zip(update, expected):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-9)


def test_fp16_is_refused_with_the_second_order():
    model = supernet()
    with pytest.raises(ValueError, match="bf16"):
        DartsStrategy(model, dice_loss, torch.optim.SGD(model.weight_parameters(), lr=0.1),
                      torch.optim.SGD(model.arch_parameters(), lr=0.1), order="second",
                      precision=MixedPrecision("fp16", "cpu"))


@pytest.mark.slow
def test_channels_last_gives_the_same_step():
    """In float64: in float32 the two memory layouts sum in different orders, and the alpha
    updates (about 1e-3) then differ by a few percent on 2 threads."""
    data = tuple((images.double(), masks) for images, masks in (batch(seed=1), batch(seed=2)))
    model = to_channels_last(supernet().double())
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    _, update, _ = sgd_step(model, data=data)
    _, reference, _ = sgd_step(supernet().double(), data=data)
    for a, b in zip(update, reference):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)


@pytest.mark.slow
def test_compiled_supernet_computes_the_same_logits():
    model = supernet()
    images = batch()[0]
    expected = copy.deepcopy(model)(images)
    compile_model(model, backend="eager")  # the test checks the tracing; "inductor" adds code generation
    torch.testing.assert_close(model(images), expected)
    assert list(model.state_dict()) == list(supernet().state_dict())


def saved_bytes(model, images) -> int:
    """Bytes of the tensors autograd keeps for the backward pass of one forward pass."""
    saved = {}

    def pack(tensor):
        saved[id(tensor)] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(images)
    return sum(saved.values())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["darts", "gdas"])
def test_checkpointing_keeps_fewer_activations(mode):
    images = batch()[0]
    plain = saved_bytes(supernet(mode=mode), images)
    assert saved_bytes(supernet(mode=mode, checkpoint_edges=True), images) < 0.7 * plain
    assert saved_bytes(supernet(mode=mode, checkpoint_cells=True), images) < 0.7 * plain
