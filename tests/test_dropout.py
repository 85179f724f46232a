"""The ViT's CPU dropout draws its masks with NumPy (models/dropout.py): the function, its
floats for a given mask, its keep rate, its seeding and its training curve are torch's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from warmup_bench.data import DEBIAN_FASHION_MNIST, load_dataset
from warmup_bench.models import Dropout, build_model, mask_source
from warmup_bench.models import dropout as fast
from warmup_bench.models.vit import VisionTransformer


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_kept_values_and_gradients_are_those_of_torch_dropout(dtype) -> None:
    """Where both keep an element, the output and the gradient are torch's floats; where
    ours drops one, both are zero."""
    x = torch.randn(300, 1000, generator=torch.Generator().manual_seed(0)).to(dtype)
    x.requires_grad_()
    upstream = torch.randn(300, 1000, generator=torch.Generator().manual_seed(1)).to(dtype)
    torch.manual_seed(2)
    theirs = F.dropout(x, 0.1, True)
    (their_grad,) = torch.autograd.grad(theirs, x, upstream)
    ours = fast.dropout(x, 0.1, True)
    (our_grad,) = torch.autograd.grad(ours, x, upstream)
    both = (theirs != 0) & (ours != 0)
    assert both.sum() > 0.75 * x.numel()
    assert torch.equal(ours[both], theirs[both]) and torch.equal(our_grad[both], their_grad[both])
    dropped = ours == 0
    assert 0.09 < dropped.float().mean() < 0.11 and not our_grad[dropped].any()
    assert ours.dtype == dtype


def test_masks_follow_torchs_seed_and_rng_state() -> None:
    x = torch.ones(50_000)
    torch.manual_seed(7)
    first, second = fast.dropout(x, 0.1, True), fast.dropout(x, 0.1, True)
    torch.manual_seed(7)
    assert torch.equal(fast.dropout(x, 0.1, True), first)
    state = torch.get_rng_state()  # what a checkpoint saves
    torch.manual_seed(8)
    other = fast.dropout(x, 0.1, True)
    torch.set_rng_state(state)
    assert torch.equal(fast.dropout(x, 0.1, True), second)
    assert not torch.equal(first, second) and not torch.equal(first, other)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.25, 0.999, 1e-4])
def test_keep_rate_is_one_minus_p(p: float) -> None:
    """20M draws: the keep rate within 5 standard errors of 1 - p. For p = 0.1 the
    8-bit rule alone would give 230/256 or 231/256, 24 standard errors off either way:
    the tie draws are what makes it exact."""
    n = 20_000_000
    keep = fast.keep_mask(n, p, np.random.PCG64(11))
    assert abs(keep.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)


def test_neighbouring_elements_are_independent() -> None:
    keep = fast.keep_mask(8_000_000, 0.1, np.random.PCG64(5))
    for lag in (1, 2, 7, 8):  # within a byte word, across words
        both = (keep[:-lag] & keep[lag:]).mean()
        assert abs(both - 0.81) < 5 * math.sqrt(0.81 * 0.19 / len(keep))


def test_evaluation_zero_p_and_other_devices_are_torchs_dropout() -> None:
    x = torch.randn(64, 10)
    assert torch.equal(fast.dropout(x, 0.1, False), x)
    assert torch.equal(fast.dropout(x, 0.0, True), x)
    assert not fast.dropout(x, 1.0, True).any()
    meta = torch.empty(64, 10, device="meta")  # not a CPU tensor: F.dropout, no NumPy
    assert fast.dropout(meta, 0.1, True).device.type == "meta"
    layer = Dropout(0.1).eval()
    assert torch.equal(layer(x), x)
    torch.manual_seed(3)
    expected = fast.dropout(x, 0.1, True)
    torch.manual_seed(3)
    in_place = x.clone()
    assert Dropout(0.1, inplace=True).train()(in_place) is in_place
    assert torch.equal(in_place, expected)  # the same mask, written into x


def test_attention_is_sdpas_math_path_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(8, 4, 17, 24, generator=g) for _ in range(3))
    math_path = torch.ops.aten._scaled_dot_product_attention_math(q, k, v)[0]
    assert torch.equal(fast.attention_weights(q, k) @ v, math_path)
    assert torch.equal(fast.attention(q, k, v, 0.1, False),
                       F.scaled_dot_product_attention(q, k, v))
    torch.manual_seed(1)
    dropped = fast.attention(q, k, v, 0.1, True)
    assert dropped.shape == q.shape and not torch.equal(dropped, math_path)


def test_under_torch_compile_the_graph_draws_its_own_masks() -> None:
    """No NumPy inside a compiled graph: one graph, no break, torch's dropout in it."""
    torch.manual_seed(0)
    vit = VisionTransformer(depth=2).train()
    compiled = torch.compile(vit, backend="eager", fullgraph=True)  # a break would raise
    logits = compiled(torch.randn(4, 1, 28, 28))
    assert logits.shape == (4, 10) and torch.isfinite(logits).all()
    assert mask_source(vit, torch.device("cpu"), compiled=True) == "torch"


def test_the_vit_uses_it_and_meta_says_where_masks_come_from() -> None:
    vit = build_model("vit", 10, 1)
    layers = [m for m in vit.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(layers) == 33 and all(isinstance(m, Dropout) for m in layers)
    assert sum(p.numel() for p in vit.parameters()) == 1_797_130
    assert mask_source(vit, torch.device("cpu")) == "numpy-pcg64"
    assert mask_source(vit, torch.device("cuda")) == "torch"
    assert mask_source(build_model("emnist-cnn", 47, 1), torch.device("cpu")) is None
    assert mask_source(torch.nn.Sequential(torch.nn.Dropout(0.5)), torch.device("cpu")) == "torch"


def fashion_vit_losses(data, steps: int, torch_masks: bool, monkeypatch) -> tuple[list, float]:
    """`steps` AdamW steps of a 4-block ViT (the recipe's width, heads, dropout) on
    Fashion-MNIST; its losses and the test accuracy on 2,000 images."""
    with monkeypatch.context() as patch:
        if torch_masks:  # torch's own CPU dropout noise: bernoulli_(1 - p), then / (1 - p)
            patch.setattr(fast, "dropout_noise", lambda shape, p, dtype: torch.empty(
                shape, dtype=dtype).bernoulli_(1 - p).div_(1 - p))
        torch.manual_seed(0)
        model = VisionTransformer(depth=4)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
        images = (data.train.images.float() / 255 - data.mean[0]) / data.std[0]
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
        losses = []
        for step in range(steps):
            batch = order[step * 128:(step + 1) * 128]
            loss = F.cross_entropy(model(images[batch]), data.train.labels[batch],
                                   label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        test = (data.test.images[:2000].float() / 255 - data.mean[0]) / data.std[0]
        accuracy = (model(test).argmax(1) == data.test.labels[:2000]).float().mean().item()
    return losses, accuracy


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist")
def test_numpy_masks_train_the_same_curve_as_torchs_on_fashion_mnist(monkeypatch) -> None:
    """Same initialisation and batches, masks from NumPy or from torch: the smoothed loss
    curves agree within what different masks leave (the masks are the only difference),
    and so do the test accuracies. 150 steps each (measured: curves within 0.052, test
    accuracies 76.9% and 77.4%)."""
    data = load_dataset("fashion-mnist")
    ours, our_acc = fashion_vit_losses(data, 150, False, monkeypatch)
    theirs, their_acc = fashion_vit_losses(data, 150, True, monkeypatch)
    smooth = [np.convolve(curve, np.ones(10) / 10, "valid") for curve in (ours, theirs)]
    assert smooth[1][-1] < 0.6 * smooth[1][0]  # it did learn
    assert np.abs(smooth[0] - smooth[1]).max() < 0.1
    assert abs(our_acc - their_acc) < 0.03 and min(our_acc, their_acc) > 0.7
