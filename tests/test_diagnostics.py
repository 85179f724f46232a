"""Each diagnostic against a direct computation on a tiny model, and their effect on a run:
none on what it computes, exact resume, real CSV rows."""

from __future__ import annotations

import math

import pytest
import torch
from clirun import invoke

from warmup_bench.diagnostics import (
    DIAGNOSTIC_COLUMNS,
    Sharpness,
    StepProbe,
    adam_ratios,
    angles,
    power_iteration,
    preconditioner_scales,
    ratio_stats,
)
from warmup_bench.runs import RunDir


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def backward(model: torch.nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(16, 6, generator=g), torch.randint(0, 3, (16,), generator=g)
    torch.nn.functional.cross_entropy(model(x), y).backward()


def test_adam_first_step_ratio_is_the_sign_of_the_gradient() -> None:
    """Ma & Yarats: at t = 1, m_hat / sqrt(v_hat) = g / |g|, so every coordinate with a
    non-zero gradient moves by the full LR."""
    model = tiny_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, eps=1e-8)
    backward(model)
    grads = [p.grad.clone() for p in model.parameters()]
    optimizer.step()
    for r, g in zip(adam_ratios(optimizer), grads):
        moving = g.abs() > 1e-6
        assert moving.any()
        expected = torch.sign(g) / (1 + 1e-8 / g.abs())  # r = g / (|g| + eps)
        assert torch.allclose(r[moving], expected[moving], rtol=1e-5, atol=0)
        assert (r[~moving].abs() < 0.01).all()


def test_ratio_stats_are_those_of_all_coordinates_together() -> None:
    g = torch.Generator().manual_seed(0)
    ratios = [torch.randn(shape, generator=g) for shape in ((40, 30), (30,), (7, 3, 5, 5))]
    every = torch.cat([r.flatten() for r in ratios]).abs()
    mean, above, largest = ratio_stats([r.clone() for r in ratios])
    assert mean.item() == pytest.approx(every.mean().item(), rel=1e-6)
    assert above.item() == pytest.approx((every > 0.5).sum().item() / every.numel(), rel=1e-6)
    assert largest.item() == every.max().item()


def test_probe_values_equal_direct_computations_for_sgd_without_momentum() -> None:
    model, lr = tiny_model(), 0.05
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    backward(model)
    before = [p.detach().clone() for p in model.parameters()]
    grads = [p.grad.detach().clone() for p in model.parameters()]
    probe = StepProbe(model, optimizer)
    probe.before()
    optimizer.step()
    row, layers = probe.after(step=1, with_layers=True)
    theta = torch.cat([b.flatten() for b in before]).double()
    g = torch.cat([x.flatten() for x in grads]).double()
    assert row["grad_norm"] == pytest.approx(g.norm().item(), rel=1e-6)
    assert row["param_norm"] == pytest.approx(theta.norm().item(), rel=1e-6)
    # plain SGD: delta theta = -lr g, so the relative update is lr ||g|| / ||theta||
    assert row["relative_update"] == pytest.approx(lr * g.norm().item() / theta.norm().item(),
                                                   rel=1e-5)
    assert row["update_norm"] == pytest.approx(lr * g.norm().item(), rel=1e-5)
    assert math.isnan(row["r_abs_mean"]) and math.isnan(row["momentum_norm"])
    weights = [(n, p) for n, p in model.named_parameters() if p.ndim >= 2]
    assert [x["layer"] for x in layers] == [n for n, _ in weights]
    for layer, (name, _) in zip(layers, weights):
        index = [n for n, _ in model.named_parameters()].index(name)
        w, gw = before[index].double(), grads[index].double()
        assert layer["relative_update"] == pytest.approx(
            (lr * gw.norm() / w.norm()).item(), rel=1e-5)
        assert layer["grad_norm"] == pytest.approx(gw.norm().item(), rel=1e-6)
        after = w - lr * gw
        cosine = (w * after).sum() / (w.norm() * after.norm())
        assert layer["angular_update"] == pytest.approx(torch.arccos(cosine).item(), rel=1e-3)
    assert row["max_layer_relative_update"] == max(x["relative_update"] for x in layers)
    assert set(row) == set(DIAGNOSTIC_COLUMNS)


def test_sgd_momentum_buffer_norm() -> None:
    model = tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    backward(model)
    probe = StepProbe(model, optimizer)
    probe.before()
    optimizer.step()
    row, _ = probe.after(step=1, with_layers=False)
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert row["momentum_norm"] == pytest.approx(grads.norm().item(), rel=1e-6)  # buf_1 = g


def test_tiny_angles_are_exact() -> None:
    """arccos(cos) loses angles below ~3e-4 in float32; the atan2 form keeps them."""
    for theta in (1e-6, 1e-4, 0.3):
        a = torch.tensor([1.0, 0.0, 0.0])
        b = torch.tensor([math.cos(theta), math.sin(theta), 0.0]) * 3.0
        assert angles([a], [b]).item() == pytest.approx(theta, rel=1e-4)


def known_hessian(top: float = 5.0) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0),
                                       dtype=torch.float64))
    return q @ torch.diag(torch.tensor([top, 3.0, 2.0, 1.0, 0.5, -0.2],
                                       dtype=torch.float64)) @ q.T


def test_power_iteration_finds_the_top_eigenvalue() -> None:
    a = known_hessian()
    value, vector = power_iteration(lambda v: [a @ v[0]], [torch.ones(6, dtype=torch.float64)],
                                    iterations=500, tol=1e-12)
    assert value == pytest.approx(5.0, rel=1e-4)
    assert torch.allclose((a @ vector[0]), 5.0 * vector[0], atol=1e-4)


class Quadratic(torch.nn.Module):
    """loss(w) = 1/2 (w - c)^T A (w - c): its Hessian is A everywhere."""

    def __init__(self, a: torch.Tensor):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(6, dtype=torch.float64))
        self.a = a

    def forward(self, x):
        d = self.w - x
        return 0.5 * d @ self.a @ d


def test_sharpness_of_a_quadratic_is_its_top_eigenvalue_plain_and_preconditioned() -> None:
    a = known_hessian(top=7.5)
    model = Quadratic(a)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.zeros(6, dtype=torch.float64)).backward()
    optimizer.step()
    probe = Sharpness(model, lambda out, y: out, torch.zeros(6, dtype=torch.float64), None,
                      seed=0, iterations=400)
    result = probe.estimate(optimizer, lr=0.1)
    assert result["sharpness"] == pytest.approx(7.5, rel=1e-4)
    s = preconditioner_scales(optimizer, [model.w])[0]
    expected = torch.linalg.eigvalsh(s[:, None] * a * s[None, :]).max().item()
    assert result["preconditioned_sharpness"] == pytest.approx(expected, rel=1e-4)
    assert result["sharpness_threshold"] == pytest.approx((2 + 2 * 0.9) / (0.1 * 0.1))
    again = probe.estimate(optimizer, lr=0.1)  # warm-started: already converged
    assert again["sharpness"] == pytest.approx(7.5, rel=1e-4)


def digits(tmp_path, name: str, *flags: str):
    result = invoke("train", "--task", "digits", "--epochs", "3", "--no-progress", "--out",
                    str(tmp_path / name), *flags)
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / name / "digits").iterdir()
    return RunDir(folder)


def test_diagnostics_change_nothing_the_run_computes(tmp_path) -> None:
    on = digits(tmp_path, "on", "--sharpness-every", "30")
    off = digits(tmp_path, "off", "--no-diagnostics")
    assert on.steps_path.read_text() == off.steps_path.read_text()
    metrics = ["epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert on.read_epochs()[metrics].equals(off.read_epochs()[metrics])
    diagnostics, layers = on.read_diagnostics(), on.read_layers()
    assert list(diagnostics.columns) == DIAGNOSTIC_COLUMNS
    # every one of the first log-interval iterations (where warmup matters most), then
    # the log steps of steps.csv
    logged = on.read_steps()["step"].tolist()
    assert diagnostics["step"].tolist() == list(range(1, 11)) + logged[1:]
    assert diagnostics["sharpness"].notna().sum() == len(range(1, 3 * 44 + 1, 30))
    assert (diagnostics["r_abs_max"] > 0).all() and diagnostics["momentum_norm"].isna().all()
    assert set(layers["step"]) == set(range(1, 3 * 44 + 1, 100))
    assert set(layers["layer"]) == {"conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"}
    assert not (off.path / "diagnostics.csv").exists()


def test_sharpness_every_must_fit_the_log_interval(tmp_path) -> None:
    result = invoke("train", "--task", "digits", "--sharpness-every", "15", "--out", str(tmp_path))
    assert result.exit_code == 2 and "multiple of the log interval (10)" in result.output


@pytest.mark.slow
def test_report_draws_the_diagnostics_figures(tmp_path) -> None:
    for warmup in ("none", "untuned-linear"):
        for seed in ("1", "2"):
            result = invoke("train", "--task", "digits", "--epochs", "2", "--no-progress",
                            "--warmup", warmup, "--seed", seed, "--sharpness-every", "20", "--out",
                            str(tmp_path / "r"))
            assert result.exit_code == 0, result.output
    result = invoke("report", str(tmp_path / "r"), "--out", str(tmp_path / "rep"))
    assert result.exit_code == 0, result.output
    plots = {p.name for p in (tmp_path / "rep" / "plots").glob("*.png")}
    assert {"diagnostics_digits_AdamW_lr_0.01.png", "update_size_digits_AdamW_lr_0.01.png"} <= plots


def test_sharpness_works_through_attention() -> None:
    """The fused attention kernels have no double backward; the estimate must still run
    (and be finite) on the ViT."""
    from warmup_bench.models.vit import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(depth=1, dim=16, heads=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
    result = Sharpness(model, torch.nn.CrossEntropyLoss(), x, y, seed=0,
                       iterations=3).estimate(optimizer, lr=1e-3)
    assert math.isfinite(result["sharpness"]) and math.isfinite(result["preconditioned_sharpness"])
    assert model.training  # the probe put the model back in training mode
