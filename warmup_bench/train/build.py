"""Everything a run is made of, built from its config before any file is written: the
loaders (data on the device), the model, its optimizer / schedule / warmup, the loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError, TrainConfig
from ..data import AUGMENTATIONS, BatchLoader, Dataset, TextDataset, TextLoader, split_train_val
from ..models import build_model
from ..optim import Training, build_training
from .device import Kernels


@dataclass
class Loaders:
    train: BatchLoader | TextLoader
    test: BatchLoader | TextLoader
    val: BatchLoader | TextLoader | None
    # a text corpus's record for meta.json: its vocabulary, its unigram entropy (the loss
    # of a model that learned only the characters' frequencies), its sizes
    text: dict | None = None


def make_loaders(cfg: TrainConfig, data: Dataset | TextDataset, device: torch.device,
                 layout: torch.memory_format = torch.contiguous_format) -> Loaders:
    if isinstance(data, TextDataset):
        return text_loaders(cfg, data, device)
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


def text_loaders(cfg: TrainConfig, data: TextDataset, device: torch.device) -> Loaders:
    """A corpus's windows: `epoch_steps` random batches per epoch from the training
    stream, fixed windows of the held-out streams."""
    def held_out(stream: torch.Tensor, split: str) -> TextLoader:
        return TextLoader(stream, cfg.context, cfg.test_batch_size, device=device,
                          name=f"{data.name}'s {split} split")

    train = TextLoader(data.train, cfg.context, cfg.batch_size, epoch_steps=cfg.epoch_steps,
                       seed=cfg.seed, device=device, name=f"{data.name}'s train split")
    return Loaders(train, held_out(data.test, "held-out"),
                   held_out(data.val, "validation") if data.val is not None else None,
                   data.record())


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of logits (..., classes) against labels (...): an image's one
    label, or every position of a text window (a view for images: the same floats)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           label_smoothing=label_smoothing)


class TokenCrossEntropy(torch.nn.Module):
    """token_cross_entropy as the run's criterion."""

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return token_cross_entropy(logits, labels, self.label_smoothing)


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


def build_net(cfg: TrainConfig, data: Dataset | TextDataset, device: torch.device,
              iters_per_epoch: int, kernels: Kernels = Kernels()) -> Net:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.input_shape[0], cfg).to(device)
    model = model.to(memory_format=kernels.layout)
    return Net(model, torch.compile(model, mode=kernels.compile_mode) if cfg.compile else model,
               build_training(model, cfg, iters_per_epoch, kernels.fused_optimizer),
               TokenCrossEntropy(cfg.label_smoothing), device, kernels)


def check_model_fits(cfg: TrainConfig, model: torch.nn.Module, loader: BatchLoader | TextLoader,
                     num_classes: int) -> None:
    """One test sample through the model (eval mode, no RNG drawn): a model that cannot
    take the data set's images (or text windows) is a ConfigError before any file is
    written."""
    x, y = next(iter(loader))
    what = "text windows" if isinstance(loader, TextLoader) else "images"
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x[:1])
    except (RuntimeError, ValueError, IndexError) as error:
        raise ConfigError(f"--model {cfg.model} cannot take {cfg.dataset}'s {what} "
                          f"{tuple(x.shape[1:])} ({str(error).splitlines()[0]}).") from None
    expected = (1, *y.shape[1:], num_classes)  # a logit per class for each label
    if tuple(logits.shape) != expected:
        raise ConfigError(f"--model {cfg.model} returns {tuple(logits.shape[1:])} outputs per "
                          f"sample; expected {expected[1:]}, one logit per class.")
