"""Random augmentation of whole uint8 batches on their device, per-sample parameters.

Each augmentation draws all of an epoch's parameters at once from a CPU generator
(`sample`), so a seed fixes every batch on every device, and applies them to a batch with
a few tensor ops (`__call__`); no per-image Python anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..registry import Registry


class CropFlip:
    """Random crop back to H x W from the image zero-padded by `padding`, then a random
    horizontal flip (probability 1/2): CIFAR's standard augmentation."""

    def __init__(self, padding: int = 4, flip: bool = True):
        self.padding = padding
        self.flip = flip

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        offsets = torch.randint(0, 2 * self.padding + 1, (n, 2), generator=generator)
        flips = torch.rand(n, generator=generator) < 0.5 if self.flip else \
            torch.zeros(n, dtype=torch.bool)
        return {"offsets": offsets, "flips": flips}

    def __call__(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        b, c, h, w = images.shape
        p = self.padding
        padded = F.pad(images, (p, p, p, p))
        dy, dx = params["offsets"][:, :1], params["offsets"][:, 1:]
        rows = dy + torch.arange(h, device=images.device)
        columns = torch.arange(w, device=images.device)
        # a flip is a crop that reads its columns backwards: one gather does both
        columns = dx + torch.where(params["flips"][:, None], w - 1 - columns, columns)
        out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, w + 2 * p))
        return out.gather(3, columns[:, None, None, :].expand(b, c, h, w))


class RotateTranslate:
    """Random rotation within +-`degrees` (counter-clockwise positive) and translation by
    a whole number of pixels within +-`translate` of the size, zero fill, nearest pixel:
    the ViT-on-MNIST augmentation. One affine grid for the whole batch."""

    def __init__(self, degrees: float = 7.0, translate: float = 0.1):
        self.degrees = degrees
        self.translate = translate

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        angles = (torch.rand(n, generator=generator) * 2 - 1) * self.degrees
        fractions = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.translate
        return {"angles": angles, "shift_fractions": fractions}

    def __call__(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        b, c, h, w = images.shape
        fractions = params["shift_fractions"]
        # whole pixels (x, y); scalars, not a tensor built per batch (a copy to the GPU)
        shifts = torch.round(torch.stack([fractions[:, 0] * w, fractions[:, 1] * h], dim=1))
        return affine(images, params["angles"], shifts)


def affine(images: torch.Tensor, angles_deg: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Rotates each image about its centre by its angle (counter-clockwise as displayed),
    then moves it by its (x, y) shift in pixels; uint8 in, uint8 out (nearest is exact)."""
    b, c, h, w = images.shape
    radians = angles_deg.to(images.device, torch.float32) * (math.pi / 180)
    cos, sin = torch.cos(radians), torch.sin(radians)
    # output -> input map in normalised coordinates (y down): input = R(-a) (out - t)
    shifts = shifts.to(images.device, torch.float32)
    t = torch.stack([shifts[:, 0] * (2.0 / w), shifts[:, 1] * (2.0 / h)], dim=1)
    theta = torch.stack([
        torch.stack([cos, -sin * h / w, -(cos * t[:, 0] - sin * t[:, 1] * h / w)], dim=1),
        torch.stack([sin * w / h, cos, -(sin * t[:, 0] * w / h + cos * t[:, 1])], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    out = F.grid_sample(images.float(), grid, mode="nearest", padding_mode="zeros",
                        align_corners=False)
    return out.to(torch.uint8)


@dataclass(frozen=True)
class AugmentEntry:
    factory: Callable[[], object]  # () -> the augmentation (None: none)
    description: str
    label: str

    def __call__(self):
        return self.factory()

    def check(self, cfg) -> None:
        """The rules an augmentation states about a config (none)."""


AUGMENTATIONS: Registry[AugmentEntry] = Registry("augmentation", "--augment", {
    "none": AugmentEntry(lambda: None, "no augmentation", "none"),
    "crop-flip": AugmentEntry(CropFlip, "random crop (4-pixel zero padding) + horizontal "
                              "flip: CIFAR's", "crop-flip"),
    "rotate-translate": AugmentEntry(RotateTranslate, "rotation within 7 degrees + "
                                     "translation within 10%: the ViT write-up's",
                                     "rotate-translate"),
})
