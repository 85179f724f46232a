"""The CPU speed levers change how a step runs, never what the run means: the multi-tensor
optimizers give the same floats, the LR trajectory stays exact, channels_last and the
fused optimizer step train the same curve within noise on real data, chunked evaluation
gives the same metrics, and each choice is recorded in meta.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from warmup_bench.data import DEBIAN_FASHION_MNIST, load_dataset
from warmup_bench.optim import OPTIMIZERS, optimizer_kernel
from warmup_bench.tasks import resolve_config
from warmup_bench.train import (
    Kernels,
    RunOptions,
    build_net,
    choose_kernels,
    evaluate,
    make_loaders,
    memory_format,
    train,
)


def test_multi_tensor_optimizers_are_the_bit_identical_ones() -> None:
    assert [n for n, e in OPTIMIZERS.items() if e.foreach] == ["sgd", "adam", "adamw",
                                                                 "amsgradw", "adamax",
                                                                 "gi-adamw"]


@pytest.mark.parametrize("name", [n for n, e in OPTIMIZERS.items() if e.foreach])
def test_multi_tensor_optimizer_gives_the_same_floats_as_the_loop(name: str) -> None:
    cfg = resolve_config("digits", {"opt": name, "weight_decay": 0.01, "warmup": "none"})
    results = []
    for foreach in (True, False):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
        optimizer = dataclasses.replace(OPTIMIZERS[name], foreach=foreach).build(
            model.parameters(), cfg)
        assert optimizer.defaults["foreach"] is (True if foreach else None)
        for step in range(25):
            x = torch.randn(8, 6, generator=torch.Generator().manual_seed(step))
            loss = model(x).square().mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))


def test_conv_nets_run_channels_last_on_cpu_and_the_vit_does_not() -> None:
    cpu = torch.device("cpu")
    for task in ("digits", "emnist-cnn", "cifar10-resnet20"):
        assert memory_format(resolve_config(task), cpu) == torch.channels_last
        assert memory_format(resolve_config(task), cpu, False) == torch.contiguous_format
    assert memory_format(resolve_config("mnist-vit"), cpu) == torch.contiguous_format
    assert memory_format(resolve_config("digits"), torch.device("mps")) == \
        torch.contiguous_format


def test_fused_step_is_the_cpu_default_where_torch_has_one() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [n for n, e in OPTIMIZERS.items() if e.fused] == ["sgd", "adam", "adamw", "amsgradw",
                                                             "gi-adamw"]
    assert choose_kernels(resolve_config("digits"), cpu).fused_optimizer
    assert not choose_kernels(resolve_config("digits"), cpu, fused=False).fused_optimizer
    assert not choose_kernels(resolve_config("digits"), cuda).fused_optimizer
    params = [torch.nn.Parameter(torch.zeros(3))]
    for name, kernel in (("adamw", "fused"), ("sgd", "fused"), ("adamax", "foreach"),
                         ("radamw", "for-loop")):
        cfg = resolve_config("digits", {"opt": name, "warmup": "none"})
        assert optimizer_kernel(OPTIMIZERS[name].build(params, cfg, fused=True)) == kernel
    unfused = OPTIMIZERS["adamw"].build(params, resolve_config("digits", {"opt": "adamw"}))
    assert optimizer_kernel(unfused) == "foreach"


def run_steps(tmp_path: Path, name: str, fast: bool, data) -> pd.DataFrame:
    cfg = resolve_config("emnist-cnn", {"epochs": 1, "train_samples": 19_200,
                                        "log_interval": 5})  # 300 steps of 64
    result = train(cfg, tmp_path / name, RunOptions(channels_last=fast, fused_optimizer=fast,
                                                    diagnostics=False,
                                                    on_note=lambda _: None), data=data)
    meta = json.loads((result.run.path / "meta.json").read_text())
    assert meta["memory_format"] == ("channels_last" if fast else "contiguous")
    assert meta["optimizer_kernel"] == ("fused" if fast else "foreach")
    assert meta["dropout_masks"] is None  # the EMNIST CNN has no dropout
    return result.run.read_steps().assign(test_acc=result.summary.final_test_acc)


@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN_FASHION_MNIST.is_dir(), reason="needs dataset-fashion-mnist")
def test_cpu_kernels_train_the_same_curve_on_fashion_mnist(tmp_path) -> None:
    """300 AdamW steps of the EMNIST recipe on the real Fashion-MNIST, channels_last with
    the fused AdamW step against the contiguous layout with the multi-tensor step: the LRs
    are the same floats; the losses agree within what float reassociation leaves after 300
    steps (an independent seed differs far more); the test accuracies within half a point."""
    data = load_dataset("fashion-mnist")
    fast = run_steps(tmp_path, "fast", True, data)
    plain = run_steps(tmp_path, "plain", False, data)
    assert fast["lr"].tolist() == plain["lr"].tolist()  # the trajectory stays exact
    smooth = {k: v["loss"].rolling(6).mean().dropna() for k, v in (("fast", fast),
                                                                     ("plain", plain))}
    assert (smooth["fast"] - smooth["plain"]).abs().max() < 0.01  # measured: 0.0014
    assert plain["loss"].iloc[-6:].mean() < 0.5 * plain["loss"].iloc[0]  # it did learn
    assert abs(fast["test_acc"].iloc[0] - plain["test_acc"].iloc[0]) < 0.005


def test_chunked_cpu_evaluation_gives_the_batchwise_metrics() -> None:
    cfg = resolve_config("digits", {"test_batch_size": 359})
    data = load_dataset("digits")
    device = torch.device("cpu")
    loaders = make_loaders(cfg, data, device, torch.channels_last)
    net = build_net(cfg, data, device, len(loaders.train), Kernels(torch.channels_last))
    chunked = evaluate(net, loaders.test)  # 359 images in chunks of 128
    net.model.eval()
    x, y = next(iter(loaders.test))
    with torch.no_grad():
        logits = net.model(x)  # one batch of 359
    top5 = logits.topk(5, 1).indices == y[:, None]
    assert len(x) == 359 and chunked[1] == top5[:, 0].float().mean().item()
    assert chunked[2] == top5.any(1).float().mean().item()
    assert chunked[0] == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(),
                                       rel=1e-6)


def test_amp_on_a_cpu_without_native_bf16_trains_float32_and_says_so(tmp_path,
                                                                     monkeypatch) -> None:
    import warmup_bench.train.device as training

    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    notes = []
    cfg = resolve_config("digits", {"epochs": 1, "amp": True})
    result = train(cfg, tmp_path, RunOptions(on_note=notes.append, diagnostics=False))
    assert any("training in float32" in n and "AVX512-BF16" in n for n in notes)
    assert json.loads((result.run.path / "meta.json").read_text())["autocast"] is None


def test_amp_on_a_cpu_with_native_bf16_runs_bf16_autocast(tmp_path, monkeypatch) -> None:
    import warmup_bench.train.device as training

    # bf16 autocast also runs (emulated, slower) where the CPU has no native bf16
    monkeypatch.setattr(training, "native_bf16", lambda device: True)
    cfg = resolve_config("digits", {"epochs": 2, "amp": True})
    result = train(cfg, tmp_path, RunOptions(on_note=lambda _: None, diagnostics=False))
    assert json.loads((result.run.path / "meta.json").read_text())["autocast"] == "bf16"
    assert result.summary.best_test_acc > 0.8  # bf16 still learns


@pytest.mark.parametrize("name, shape", [("resnet20", (3, 32, 32)), ("emnist-cnn", (1, 28, 28)),
                                         ("digits-net", (1, 8, 8))])
def test_in_place_relus_give_the_same_floats(name: str, shape, monkeypatch) -> None:
    """The conv nets apply ReLU (and the residual add) in place: forward and gradients
    equal those of out-of-place ReLUs bit for bit."""
    from warmup_bench.models import build_model

    def grads(model) -> list[torch.Tensor]:
        x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(0))
        model(x).square().sum().backward()
        return [p.grad for p in model.parameters()]

    torch.manual_seed(0)
    in_place = grads(build_model(name, 10, shape[0]))
    monkeypatch.setattr(torch.nn.functional, "relu", lambda x, inplace=False: torch.relu(x))
    torch.manual_seed(0)
    out_of_place = grads(build_model(name, 10, shape[0]))
    assert all(torch.equal(a, b) for a, b in zip(in_place, out_of_place))


def reference_order(name: str):
    """The reference scripts' layer order: ReLU, then max-pool (out of place)."""
    relu, pool = torch.relu, lambda t: torch.nn.functional.max_pool2d(t, 2)
    if name == "emnist-cnn":
        return lambda m, x: m.fc2(relu(m.fc1(torch.flatten(
            pool(relu(m.conv2(pool(relu(m.conv1(x)))))), 1))))
    return lambda m, x: m.fc2(relu(m.fc1(torch.flatten(pool(relu(m.conv2(relu(m.conv1(x))))),
                                                       1))))


@pytest.mark.parametrize("name, shape", [("emnist-cnn", (1, 28, 28)), ("digits-net", (1, 8, 8))])
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_relu_after_max_pool_gives_the_reference_floats(name: str, shape, layout) -> None:
    """relu(max_pool(x)) = max_pool(relu(x)) exactly: outputs and every gradient are the
    floats of the reference's order, ties and all-negative windows included (the images'
    zero top halves give windows of equal values: each channel's bias)."""
    from warmup_bench.models import build_model

    torch.manual_seed(0)
    model = build_model(name, 10, shape[0]).to(memory_format=layout)
    x = torch.randn(16, *shape, generator=torch.Generator().manual_seed(1))
    x[:, :, :shape[1] // 2] = 0
    x = x.contiguous(memory_format=layout)
    results = []
    for forward in (model, lambda t: reference_order(name)(model, t)):
        model.zero_grad()
        out = forward(x)
        out.square().sum().backward()
        results.append([out.detach()] + [p.grad.clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*results))
