"""Everything a run is made of, built from its config before any file is written: the
loaders (data on the device), the model, its optimizer / schedule / warmup, the loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..config import ConfigError, TrainConfig
from ..data import AUGMENTATIONS, BatchLoader, Dataset, split_train_val
from ..models import build_model
from ..optim import Training, build_training
from .device import Kernels


@dataclass
class Loaders:
    train: BatchLoader
    test: BatchLoader
    val: BatchLoader | None


def make_loaders(cfg: TrainConfig, data: Dataset, device: torch.device,
                 layout: torch.memory_format = torch.contiguous_format) -> Loaders:
    train_split, val_split = data.train, None
    if cfg.val_fraction > 0:
        train_split, val_split = split_train_val(train_split, cfg.val_fraction,
                                                 cfg.val_split_seed)
    if cfg.train_samples is not None:
        train_split = train_split.subset(torch.arange(min(cfg.train_samples, len(train_split))))
    # batches arrive in the model's layout
    common = {"mean": data.mean, "std": data.std, "device": device, "memory_format": layout}
    train_loader = BatchLoader(train_split, cfg.batch_size, train=True, seed=cfg.seed,
                               augment=AUGMENTATIONS[cfg.augment](), **common)
    if len(train_loader) == 0:
        raise ConfigError(f"--batch-size {cfg.batch_size} exceeds the {len(train_split)} "
                          "training samples: no full batch to train on.")
    val_loader = BatchLoader(val_split, cfg.test_batch_size, train=False, **common) \
        if val_split is not None else None
    return Loaders(train_loader, BatchLoader(data.test, cfg.test_batch_size, train=False,
                                             **common), val_loader)


@dataclass
class Net:
    """The model and everything that trains it."""

    model: torch.nn.Module
    forward: Callable  # the model, compiled or not
    training: Training
    criterion: torch.nn.Module
    device: torch.device
    kernels: Kernels = Kernels()
    # the CPU generator its dropout masks come from: torch's default for a run alone, its
    # own for a member of a pack (train.pack), whose members train in one process
    generator: torch.Generator = torch.default_generator

    @property
    def autocast(self) -> Callable:
        return self.kernels.autocast(self.device)


def build_net(cfg: TrainConfig, data: Dataset, device: torch.device, iters_per_epoch: int,
              kernels: Kernels = Kernels()) -> Net:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.input_shape[0]).to(device)
    model = model.to(memory_format=kernels.layout)
    return Net(model, torch.compile(model, mode=kernels.compile_mode) if cfg.compile else model,
               build_training(model, cfg, iters_per_epoch, kernels.fused_optimizer),
               torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), device, kernels)


def check_model_fits(cfg: TrainConfig, model: torch.nn.Module, loader: BatchLoader,
                     num_classes: int) -> None:
    """One test image through the model (eval mode, no RNG drawn): a model that cannot
    take the data set's images is a ConfigError before any file is written."""
    x, _ = next(iter(loader))
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x[:1])
    except RuntimeError as error:
        raise ConfigError(f"--model {cfg.model} cannot take {cfg.dataset}'s images "
                          f"{tuple(x.shape[1:])} ({str(error).splitlines()[0]}).") from None
    if tuple(logits.shape) != (1, num_classes):
        raise ConfigError(f"--model {cfg.model} returns {tuple(logits.shape[1:])} outputs per "
                          f"image; expected {num_classes}, one logit per class.")
