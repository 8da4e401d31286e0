"""Shared tester for segmentation networks: every entry of ``MODEL_FACTORIES`` rides it.

A factory is called as ``factory(in_channels=..., num_classes=..., scale="cpu" | "paper")``
and returns an ``nn.Module`` mapping (B, in_channels, H, W) to logits (B, num_classes, H, W).
To put another network through the same checks (e.g. the searched network), append a
``(name, factory)`` pair to ``MODEL_FACTORIES``. Tests further down that exercise behaviour
specific to the baselines (options, configurations) iterate over ``BASELINES`` instead.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from udarts.baselines import BASELINES, create_model
from udarts.baselines.light import LIGHT_BASELINES
from udarts.complexity import count_parameters
from udarts.genotype import Genotype
from udarts.models import build_searchnet

ModelFactory = Callable[..., nn.Module]

SEARCHED_GENOTYPE = Path(__file__).resolve().parents[2] / "configs" / "genotypes" / "pets-cpu-w8-seed0.json"


def create_searchnet(*, in_channels: int, num_classes: int, scale: str) -> nn.Module:
    """SEARCH-Net from the genotype shipped in configs/, at width 64 (paper) or 8 (cpu)."""
    return build_searchnet(Genotype.load(SEARCHED_GENOTYPE), in_channels, num_classes, width=64 if scale == "paper" else 8)


MODEL_FACTORIES: list[tuple[str, ModelFactory]] = [
    (name, functools.partial(create_model, name)) for name in BASELINES
] + [("searchnet", create_searchnet)]

NUM_CLASSES = 3  # the Oxford-IIIT Pet trimap classes


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tensors here are tiny: one intra-op thread is as fast on an idle machine and avoids
    OpenMP threads spinning against other processes on a busy one (measured: 20 s vs 90+ s for
    this file on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def parametrize_models(function):
    """Run ``function(name, factory)`` once per entry of ``MODEL_FACTORIES``."""
    return pytest.mark.parametrize(
        "name, factory", MODEL_FACTORIES, ids=[name for name, _ in MODEL_FACTORIES]
    )(function)


def random_batch(batch: int, in_channels: int, height: int, width: int, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, in_channels, height, width, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=generator)
    return images, labels


@parametrize_models
@pytest.mark.parametrize("height, width", [(64, 64), (64, 96)])
def test_cpu_scale_output_shape(name, factory, height, width):
    torch.manual_seed(0)
    model = factory(in_channels=3, num_classes=NUM_CLASSES, scale="cpu")
    images, _ = random_batch(2, 3, height, width)
    logits = model(images)
    assert logits.shape == (2, NUM_CLASSES, height, width)
    assert torch.isfinite(logits).all()


@parametrize_models
def test_channels_follow_arguments(name, factory):
    torch.manual_seed(0)
    model = factory(in_channels=1, num_classes=5, scale="cpu").eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 1, 64, 64))
    assert logits.shape == (2, 5, 64, 64)


@parametrize_models
def test_training_step_updates_every_parameter(name, factory):
    torch.manual_seed(0)
    model = factory(in_channels=3, num_classes=NUM_CLASSES, scale="cpu").train()
    images, labels = random_batch(2, 3, 64, 64)
    before = {key: value.detach().clone() for key, value in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    loss = F.cross_entropy(model(images), labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    assert torch.isfinite(loss)
    without_gradient = [key for key, value in model.named_parameters() if value.grad is None]
    assert not without_gradient, f"parameters outside the computation graph: {without_gradient}"
    non_finite = [key for key, value in model.named_parameters() if not torch.isfinite(value.grad).all()]
    assert not non_finite, f"non-finite gradients: {non_finite}"
    unchanged = [
        key
        for key, value in model.named_parameters()
        if value.grad.abs().sum() > 0 and torch.equal(value.detach(), before[key])
    ]
    assert not unchanged, f"parameters with a gradient that the step did not move: {unchanged}"
    changed = sum(not torch.equal(value.detach(), before[key]) for key, value in model.named_parameters())
    assert changed > 0.9 * len(before)


@pytest.mark.slow
@parametrize_models
def test_loss_falls_when_fitting_one_batch(name, factory):
    torch.manual_seed(0)
    model = factory(in_channels=3, num_classes=NUM_CLASSES, scale="cpu").train()
    generator = torch.Generator().manual_seed(0)
    # A learnable task: labels constant on 8x8 blocks, written into the image as noisy one-hot
    # channels (per-pixel random labels cannot be fitted in a few steps by strided networks).
    coarse_labels = torch.randint(0, NUM_CLASSES, (4, 4, 4), generator=generator)
    labels = coarse_labels.repeat_interleave(8, dim=1).repeat_interleave(8, dim=2)
    images = 2 * F.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float()
    images = images + 0.5 * torch.randn(images.shape, generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


@parametrize_models
def test_sizes_not_multiple_of_the_stride_are_padded_and_cropped(name, factory):
    torch.manual_seed(0)
    model = factory(in_channels=3, num_classes=NUM_CLASSES, scale="cpu").eval()
    images, _ = random_batch(2, 3, 50, 70)
    if name == "searchnet":  # documented: the U refuses sides not divisible by 8, naming the size
        with pytest.raises(ValueError, match="50x70 is not divisible by 8"):
            model(images)
        return
    with torch.no_grad():
        logits = model(images)
    assert logits.shape == (2, NUM_CLASSES, 50, 70)
    assert torch.isfinite(logits).all()


@functools.lru_cache(maxsize=None)
def paper_model(name: str) -> nn.Module:
    """Paper-scale models are big: build each once per session and only run them in eval mode."""
    torch.manual_seed(0)
    factory = dict(MODEL_FACTORIES)[name]
    return factory(in_channels=3, num_classes=NUM_CLASSES, scale="paper").eval()


@pytest.mark.slow
@parametrize_models
def test_paper_scale_builds_and_runs(name, factory):
    model = paper_model(name)
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, NUM_CLASSES, 64, 64)
    assert torch.isfinite(logits).all()
    cpu_model = factory(in_channels=3, num_classes=NUM_CLASSES, scale="cpu")
    if name in LIGHT_BASELINES:  # one size at both scales
        assert count_parameters(model) == count_parameters(cpu_model)
    else:
        assert count_parameters(model) > count_parameters(cpu_model)


# --- behaviour specific to the baselines -------------------------------------------------


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        create_model("segnet", num_classes=NUM_CLASSES)
    for name in BASELINES:
        assert name in str(error.value)


@pytest.mark.parametrize("name", BASELINES)
def test_unknown_scale_and_unknown_option_are_rejected(name):
    with pytest.raises(ValueError, match="scale"):
        create_model(name, num_classes=NUM_CLASSES, scale="huge")
    with pytest.raises(TypeError):
        create_model(name, num_classes=NUM_CLASSES, not_an_option=1)


@pytest.mark.parametrize("name", BASELINES)
def test_size_divisor_inputs_are_not_padded(name):
    model = create_model(name, num_classes=NUM_CLASSES).eval()
    divisor = model.size_divisor
    assert 32 % divisor == 0, "inputs divisible by 32 must need no padding"
    seen_shapes = []
    hook = next(module for module in model.modules() if isinstance(module, nn.Conv2d)).register_forward_hook(
        lambda module, inputs, output: seen_shapes.append(tuple(inputs[0].shape[-2:]))
    )
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
        model(torch.randn(1, 3, 64 - divisor // 2, 96 - 1))
    hook.remove()
    assert seen_shapes == [(64, 96), (64, 96)]


def test_paper_configurations_match_the_papers():
    unet = paper_model("unet")
    assert unet.input_block.conv1.out_channels == 64
    assert unet.down_blocks[-1].convs.conv2.out_channels == 1024
    setr = paper_model("setr")
    assert setr.patch_embedding.out_channels == 768
    assert setr.patch_embedding.stride == (16, 16)
    assert len(setr.blocks) == 12
    assert setr.blocks[0].attn.num_heads == 12
    for name in ("unet_resnet34", "unetpp", "fpn", "deeplabv3"):
        encoder = paper_model(name).network.encoder
        assert [len(encoder.layer1), len(encoder.layer2), len(encoder.layer3), len(encoder.layer4)] == [3, 4, 6, 3]


def test_options_override_the_scale_defaults():
    unet = create_model("unet", num_classes=2, width=8, bilinear=True)
    assert unet.input_block.conv1.out_channels == 8
    assert unet.down_blocks[-1].convs.conv2.out_channels == 128
    assert unet(torch.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)

    setr = create_model("setr", num_classes=2, embed_dim=64, depth=2, num_heads=2, patch_size=4)
    assert setr.patch_embedding.out_channels == 64 and len(setr.blocks) == 2 and setr.size_divisor == 4
    assert setr(torch.randn(1, 3, 24, 40)).shape == (1, 2, 24, 40)

    unet_resnet = create_model("unet_resnet34", num_classes=2, encoder_name="resnet34", encoder_depth=4)
    assert len(unet_resnet.network.encoder.layer1) == 3  # ResNet-34, not the cpu-scale ResNet-18
    assert unet_resnet.size_divisor == 16
    assert unet_resnet(torch.randn(1, 3, 48, 80)).shape == (1, 2, 48, 80)


def test_setr_position_embedding_follows_the_input_grid():
    setr = create_model("setr", num_classes=2).eval()  # patch 8, embedding stored on a 16x16 grid
    assert setr.position_embedding_for(8, 12).shape == (1, 128, 8, 12)
    assert setr.position_embedding_for(16, 16) is setr.position_embedding
    with pytest.raises(ValueError, match="power of two"):
        create_model("setr", num_classes=2, patch_size=12)
