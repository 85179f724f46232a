"""Device-resident batches: augmentation statistics, determinism, coverage, splits."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from warmup_bench.data import (
    BatchLoader,
    CropFlip,
    RotateTranslate,
    Split,
    affine,
    epoch_generator,
    split_train_val,
)


def numbered_split(n: int, shape=(3, 32, 32)) -> Split:
    images = torch.randint(1, 256, (n, *shape), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(n))
    return Split(images, torch.arange(n) % 10)


def loader(split: Split, batch: int, train: bool, augment=None, seed: int = 0) -> BatchLoader:
    channels = split.images.shape[1]
    return BatchLoader(split, batch, (0.0,) * channels, (1.0,) * channels, train=train,
                       augment=augment, seed=seed)


def test_crop_flip_matches_per_sample_reference_and_statistics() -> None:
    n, crop = 4000, CropFlip(padding=4)
    images = numbered_split(n).images
    params = crop.sample(n, torch.Generator().manual_seed(3))
    out = crop(images, params)
    offsets, flips = params["offsets"], params["flips"]
    assert offsets.min() == 0 and offsets.max() == 8  # shifts of -4..+4 pixels
    assert 0.46 < flips.float().mean() < 0.54  # about half flipped
    padded = F.pad(images, (4, 4, 4, 4))
    for i in range(0, n, 97):  # a per-sample reference with plain slicing
        dy, dx = offsets[i].tolist()
        expected = padded[i, :, dy:dy + 32, dx:dx + 32]
        if flips[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)
    # zero padding: the images have no zero pixel, so each sample's zeros are exactly the
    # padded area its shift exposes
    shift = (offsets - 4).abs()
    exposed = 32 * 32 - (32 - shift[:, 0]) * (32 - shift[:, 1])
    assert torch.equal((out == 0).sum(dim=(2, 3))[:, 0], exposed)
    # different samples of a batch get different parameters
    assert len({tuple(o) for o in offsets[:128].tolist()}) > 30


def test_rotation_translation_ranges_and_geometry() -> None:
    rotate = RotateTranslate(degrees=7.0, translate=0.1)
    params = rotate.sample(5000, torch.Generator().manual_seed(0))
    angles = params["angles"]
    assert angles.abs().max() <= 7.0 and angles.min() < -6.5 and angles.max() > 6.5
    shifts = torch.round(params["shift_fractions"] * 28)
    assert shifts.abs().max() == 3  # 10% of 28 pixels, whole pixels
    assert len(torch.unique(angles[:128])) == 128

    image = torch.zeros(1, 1, 29, 29, dtype=torch.uint8)
    image[0, 0, 14, 20] = 200  # 6 pixels right of the centre
    quarter = affine(image, torch.tensor([90.0]), torch.zeros(1, 2))
    assert quarter[0, 0, 8, 14] == 200 and quarter.count_nonzero() == 1  # now above: CCW
    moved = affine(image, torch.tensor([0.0]), torch.tensor([[3.0, -2.0]]))
    assert moved[0, 0, 12, 23] == 200 and moved.count_nonzero() == 1
    same = affine(image.expand(2, 1, 29, 29), torch.tensor([0.0, 360.0]), torch.zeros(2, 2))
    assert torch.equal(same, image.expand(2, 1, 29, 29))

    white = torch.full((256, 1, 28, 28), 255, dtype=torch.uint8)
    out = rotate(white, {k: v[:256] for k, v in params.items()})
    assert out.dtype == torch.uint8 and out.shape == white.shape
    assert torch.all(out[:, :, 6:22, 6:22] == 255)  # content stays; zero fill only at edges
    assert (out == 0).any(dim=(1, 2, 3)).float().mean() > 0.9


def test_same_seed_same_batches_other_seed_or_epoch_differs() -> None:
    split = numbered_split(1000)
    a = list(loader(split, 128, True, CropFlip(), seed=5).batches(2))
    b = list(loader(split, 128, True, CropFlip(), seed=5).batches(2))
    c = list(loader(split, 128, True, CropFlip(), seed=6).batches(2))
    d = list(loader(split, 128, True, CropFlip(), seed=5).batches(3))
    assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1]) and not torch.equal(a[0][1], d[0][1])


def test_train_drops_last_partial_batch_and_never_repeats_a_sample() -> None:
    split = numbered_split(1000)
    train = loader(split, 128, True)
    batches = list(train.batches(0))
    assert len(train) == len(batches) == 7 and all(len(y) == 128 for _, y in batches)
    order = torch.randperm(1000, generator=epoch_generator(0, 0))[:7 * 128]
    seen = torch.cat([x for x, _ in batches])
    torch.testing.assert_close(seen, split.images[order].float() / 255)  # mean 0, std 1


def test_evaluation_covers_every_sample_once_in_order() -> None:
    split = numbered_split(1000)
    evaluation = loader(split, 300, False, CropFlip())  # augment is ignored for eval
    batches = list(evaluation)
    assert len(evaluation) == 4 and [len(y) for _, y in batches] == [300, 300, 300, 100]
    torch.testing.assert_close(torch.cat([x for x, _ in batches]), split.images.float() / 255)
    assert torch.equal(torch.cat([y for _, y in batches]), split.labels)


def test_normalisation_uses_mean_and_std() -> None:
    split = numbered_split(10)
    data = BatchLoader(split, 10, (0.5, 0.4, 0.3), (0.2, 0.25, 0.5), train=False)
    x, _ = next(iter(data))
    mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, (split.images.float() / 255 - mean) / std)
    assert data.num_samples == 10 and data.input_shape == (3, 32, 32)


def test_train_val_split_is_deterministic_and_disjoint() -> None:
    split = Split(torch.zeros(60_000, 1, 2, 2, dtype=torch.uint8), torch.arange(60_000))
    train, val = split_train_val(split, 0.1, seed=42)
    again, _ = split_train_val(split, 0.1, seed=42)
    other, _ = split_train_val(split, 0.1, seed=43)
    assert (len(train), len(val)) == (54_000, 6_000)
    assert torch.equal(train.labels, again.labels) and not torch.equal(train.labels, other.labels)
    assert len(set(train.labels.tolist()) | set(val.labels.tolist())) == 60_000
