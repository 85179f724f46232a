"""Model registry: a name maps to a ModelEntry (a factory(num_classes, in_channels, and
the settings it reads) and what the model is)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from torch import nn

from ..registry import Registry, expect_result
from .cnn import DigitsNet, EmnistCNN
from .dropout import Dropout, mask_source
from .gpt import GPT
from .resnet_cifar import CifarResNet
from .vit import VisionTransformer

RESNET_DEPTHS = (20, 32, 44, 56, 110, 1202)


@dataclass(frozen=True)
class ModelEntry:
    factory: Callable[..., nn.Module]  # (num_classes=, in_channels=) -> the model
    description: str
    label: str
    # a conv net: trained channels_last on CUDA and CPUs, where oneDNN's and cuDNN's NHWC
    # kernels are faster (docs/cpu-speed.md)
    channels_last: bool = False
    # the config settings its factory takes as keywords (a Transformer's context, norm)
    reads: tuple[str, ...] = ()
    # a language model: token indices in, next-token logits out (the text tasks' models)
    language_model: bool = False

    def check(self, cfg) -> None:
        """The rules a model states about a config (none yet: the image size is checked
        against the data once both are built)."""


def _entry(factory, channels_last: bool) -> ModelEntry:
    """An entry described by its factory's class (or function) and first docstring line."""
    base = getattr(factory, "func", factory)
    return ModelEntry(factory, (base.__doc__ or "").strip().split("\n")[0], base.__name__,
                      channels_last)


GPT_READS = ("context", "norm", "qk_norm", "dropout", "bias")


def _gpt(layers: int, heads: int, width: int, what: str) -> ModelEntry:
    return ModelEntry(partial(GPT, layers=layers, heads=heads, width=width),
                      f"decoder-only Transformer LM, {layers} layers, {heads} heads, width "
                      f"{width} ({what})", "GPT", reads=GPT_READS, language_model=True)


MODELS: Registry[ModelEntry] = Registry("model", "--model", {
    **{f"resnet{d}": _entry(partial(CifarResNet, d), True) for d in RESNET_DEPTHS},
    "emnist-cnn": _entry(EmnistCNN, True),
    "vit": _entry(VisionTransformer, False),
    "digits-net": _entry(DigitsNet, True),
    "gpt-mini": _gpt(4, 4, 128, "nanoGPT's CPU preset"),
    "gpt-small": _gpt(6, 6, 384, "nanoGPT's Shakespeare GPU preset"),
})


def build_model(name: str, num_classes: int, in_channels: int, cfg=None) -> nn.Module:
    """Model `name` for `num_classes` outputs, with the settings of `cfg` it reads."""
    entry = MODELS[name]
    settings = {key: getattr(cfg, key) for key in entry.reads} if cfg is not None else {}
    return expect_result(entry.factory(num_classes=num_classes, in_channels=in_channels,
                                       **settings), nn.Module,
                         "torch.nn.Module", f"the factory of model {name!r}", entry.factory)


__all__ = ["MODELS", "ModelEntry", "RESNET_DEPTHS", "build_model", "Dropout", "mask_source",
           "CifarResNet", "EmnistCNN", "DigitsNet", "VisionTransformer", "GPT"]
