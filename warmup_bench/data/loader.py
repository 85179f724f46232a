"""Batches from a data set held on the training device.

A split is moved to the device once; each training epoch is an index permutation drawn
from a torch.Generator seeded by (seed, epoch), so any epoch can be replayed exactly
(which is how resume works), and augmentation + normalisation run on whole batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .catalog import Split

EPOCH_SEED_STRIDE = 1_000_003  # a prime: (seed, epoch) pairs map to distinct seeds


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * EPOCH_SEED_STRIDE + epoch)


def split_train_val(split: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    """A deterministic random split (e.g. 90/10 with seed 42 for the ViT workload)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}.")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(val_fraction * len(split)))
    return split.subset(order[n_val:]), split.subset(order[:n_val])


class Normalization:
    """uint8 images -> the float input models train on, (x / 255 - mean) / std per channel,
    computed as one multiply-subtract: what training, evaluation and inference all use."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device | str | None = None):
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = mean_t / std_t

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(-self.shift, images.float(), self.scale)


class BatchLoader:
    """Normalised float batches of one split: shuffled, augmented and full-size only when
    `train`; in order and covering every sample once otherwise."""

    def __init__(self, split: Split, batch_size: int, mean: tuple[float, ...],
                 std: tuple[float, ...], *, train: bool, augment=None, seed: int = 0,
                 device: torch.device | str | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format):
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}.")
        self.split = split.to(device) if device is not None else split
        self.batch_size = batch_size
        self.train = train
        self.augment = augment
        self.seed = seed
        self.memory_format = memory_format
        self.normalization = Normalization(mean, std, self.split.images.device)

    @property
    def scale(self) -> torch.Tensor:
        return self.normalization.scale

    @property
    def shift(self) -> torch.Tensor:
        return self.normalization.shift

    @property
    def device(self) -> torch.device:
        return self.split.images.device

    @property
    def num_samples(self) -> int:
        return len(self.split)

    targets_per_sample = 1  # one label per image (a text window has one per position)

    @property
    def num_targets(self) -> int:
        return self.num_samples

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.split.images.shape[1:])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.train else -(-n // b)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalization(images).contiguous(memory_format=self.memory_format)

    def probe_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The first batch in storage order, unaugmented: a fixed batch for probes."""
        n = min(self.batch_size, self.num_samples)
        return self.normalize(self.split.images[:n]), self.split.labels[:n]

    def fixed_batches(self, count: int) -> Iterator[torch.Tensor]:
        """Up to `count` unaugmented batches of images in one fixed random order (its own
        generator: no draw from the training's streams, the same images every time)."""
        order = torch.randperm(self.num_samples, generator=torch.Generator().manual_seed(
            self.seed * EPOCH_SEED_STRIDE - 1)).to(self.device)
        for i in range(min(count, -(-self.num_samples // self.batch_size))):
            yield self.normalize(self.split.images[order[i * self.batch_size:
                                                         (i + 1) * self.batch_size]])

    def batches(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of `epoch` (the same epoch number gives the same batches)."""
        images, labels = self.split.images, self.split.labels
        order, params = None, {}
        if self.train:
            generator = epoch_generator(self.seed, epoch)
            order = torch.randperm(self.num_samples, generator=generator).to(self.device)
            if self.augment is not None:
                params = {k: v.to(self.device)
                          for k, v in self.augment.sample(self.num_samples, generator).items()}
        for i in range(len(self)):
            window = slice(i * self.batch_size, (i + 1) * self.batch_size)
            if order is None:
                x, y = images[window], labels[window]
            else:
                index = order[window]
                x, y = images[index], labels[index]
                if self.augment is not None:
                    x = self.augment(x, {k: v[window] for k, v in params.items()})
            yield self.normalize(x), y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.batches(0)
