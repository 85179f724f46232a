"""The EMNIST CNN of pytorch_warmup's example: two 5x5 conv + max-pool stages, two
linear layers. Returns logits (cross-entropy == log-softmax + NLL)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class EmnistCNN(nn.Module):
    """pytorch_warmup's EMNIST CNN: two 5x5 conv + max-pool stages, two linear layers (28x28)."""

    def __init__(self, num_classes: int = 47, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # relu(max_pool(x)) is max_pool(relu(x)), the reference's order, exactly (ReLU is
        # monotone; gradients too, tested), with the ReLU on a quarter of the elements
        x = F.relu(F.max_pool2d(self.conv1(x), 2), inplace=True)
        x = F.relu(F.max_pool2d(self.conv2(x), 2), inplace=True)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))


class DigitsNet(nn.Module):
    """A small conv net for scikit-learn's 8x8 digits: > 90% test accuracy in seconds."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 4 * 4, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x), inplace=True)
        x = F.relu(F.max_pool2d(self.conv2(x), 2), inplace=True)  # = pool(relu): see above
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1)), inplace=True))
