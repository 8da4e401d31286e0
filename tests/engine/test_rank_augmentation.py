"""Under ``torchrun`` every process draws the same shuffled global batches but its own random
augmentation. The seeds are a function of (seed, epoch, rank), so the ranks are simulated here
one after the other in one process (no process group: ``shard_loader`` and ``seed_epoch`` only
need the rank), with and without DataLoader workers."""

import pytest
import torch
from torch.utils.data import DataLoader

from udarts.data.transforms import train_transform
from udarts.engine.distributed import RANK_SEED_STRIDE, rank_seed, shard_loader
from udarts.engine.trainer import epoch_seed, seed_epoch

SEED = 3
GLOBAL_BATCH = 4
WORLD_SIZE = 2


class OneImageAugmented:
    """Every sample is the training augmentation of the SAME image and mask, returned with its
    index: two outputs differ only by the random draws of the augmentation."""

    def __init__(self, count: int = 12) -> None:
        generator = torch.Generator().manual_seed(0)
        self.count = count
        self.transform = train_transform((16, 16))  # scale-crop, flip and colour jitter
        height, width = self.transform.input_size
        self.image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        self.mask = torch.randint(0, 3, (height, width), generator=generator)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int):
        image, mask = self.transform(self.image, self.mask)
        return index, image, mask


def global_loader(num_workers: int = 0) -> DataLoader:
    """As ``udarts.builders.build_loader`` builds a training loader: shuffled by its own generator."""
    return DataLoader(OneImageAugmented(), batch_size=GLOBAL_BATCH, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(SEED), num_workers=num_workers,
                      persistent_workers=num_workers > 0)


def draw(loader: DataLoader, epochs=(0, 1), rank: int = 0, old_seeding: bool = False) -> list:
    """Every batch of ``epochs`` as ``(indices, images, masks)``, seeded as ``fit``/``search`` do
    (``old_seeding``: as before ranks had seeds of their own, by hand)."""
    batches = []
    for epoch in epochs:
        if old_seeding:
            torch.manual_seed(epoch_seed(SEED, epoch))
            loader.generator.manual_seed(epoch_seed(SEED, epoch) + 7919)
        else:
            seed_epoch([loader], SEED, epoch, rank=rank)
        batches += [(indices.tolist(), images, masks) for indices, images, masks in loader]
    return batches


def assert_same_draws(first: list, second: list) -> None:
    assert len(first) == len(second)
    for (indices_a, images_a, masks_a), (indices_b, images_b, masks_b) in zip(first, second):
        assert indices_a == indices_b
        assert torch.equal(images_a, images_b) and torch.equal(masks_a, masks_b)


def test_rank_seed_keeps_rank_zero_and_separates_the_others():
    seeds = [epoch_seed(SEED, epoch) for epoch in range(3)]
    assert [rank_seed(seed, 0) for seed in seeds] == seeds
    derived = {rank_seed(seed, rank) for seed in seeds for rank in range(8)}
    assert len(derived) == 3 * 8 and all(0 <= value < 2**64 for value in derived)
    assert rank_seed(2**64 - 1, 1) == (2**64 - 1 + RANK_SEED_STRIDE) % 2**64
    torch.manual_seed(rank_seed(2**64 - 1, 7))  # every derived seed is one torch accepts


@pytest.mark.parametrize("num_workers", [0, 1])
def test_ranks_draw_the_same_global_batches_but_their_own_augmentation(num_workers):
    ranks = [draw(shard_loader(global_loader(num_workers), rank, WORLD_SIZE), rank=rank) for rank in range(WORLD_SIZE)]
    single = draw(global_loader(num_workers))
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 6  # 2 epochs of 3 global batches
    for step, ((indices_0, images_0, masks_0), (indices_1, images_1, masks_1)) in enumerate(zip(*ranks)):
        assert indices_0 + indices_1 == single[step][0]  # the same shuffled global batch, split in two
        for position in range(GLOBAL_BATCH // WORLD_SIZE):
            assert not torch.equal(images_0[position], images_1[position]), (step, position)
    # the test can see the correlation it guards against: with rank 0's seeds on every rank (as
    # before), position k of both slices gets the same crop, flip and jitter
    correlated = []
    for rank in range(WORLD_SIZE):
        loader = shard_loader(global_loader(num_workers), rank, WORLD_SIZE)
        loader.worker_init_fn = None  # the workers keep the seeds torch gives them, alike on every rank
        correlated.append(draw(loader, rank=0))
    for (_, images_0, masks_0), (_, images_1, masks_1) in zip(*correlated):
        assert torch.equal(images_0, images_1) and torch.equal(masks_0, masks_1)


@pytest.mark.parametrize("num_workers", [0, 1])
def test_one_process_draws_what_it_drew_before_ranks_had_seeds(num_workers):
    before = draw(global_loader(num_workers), old_seeding=True)
    assert_same_draws(draw(global_loader(num_workers)), before)  # seed_epoch's default rank 0
    assert_same_draws(draw(shard_loader(global_loader(num_workers), 0, 1)), before)  # a 1-process shard


def test_a_resumed_rank_redraws_its_augmentation():
    """Without workers the seeds of an epoch depend on (seed, epoch, rank) only: epoch 1 of rank 1
    drawn after epoch 0, or first (as a resumed run does), is the same."""
    uninterrupted = draw(shard_loader(global_loader(), 1, WORLD_SIZE), epochs=(0, 1), rank=1)
    resumed = draw(shard_loader(global_loader(), 1, WORLD_SIZE), epochs=(1,), rank=1)
    assert_same_draws(uninterrupted[3:], resumed)
