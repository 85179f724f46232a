"""Model registry: name -> factory(num_classes, in_channels)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from .cnn import DigitsNet, EmnistCNN
from .dropout import Dropout, mask_source
from .resnet_cifar import CifarResNet
from .vit import VisionTransformer

RESNET_DEPTHS = (20, 32, 44, 56, 110, 1202)

MODELS: dict[str, Callable[..., nn.Module]] = {
    **{f"resnet{d}": partial(CifarResNet, d) for d in RESNET_DEPTHS},
    "emnist-cnn": EmnistCNN,
    "vit": VisionTransformer,
    "digits-net": DigitsNet,
}
CONV_NETS = {name for name in MODELS if name != "vit"}  # channels_last (CUDA, CPU) helps these


def build_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)


__all__ = ["MODELS", "CONV_NETS", "RESNET_DEPTHS", "build_model", "Dropout", "mask_source",
           "CifarResNet", "EmnistCNN", "DigitsNet", "VisionTransformer"]
