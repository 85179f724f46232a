"""GIAdamW (warmup_bench.gi_adam): Adam(W) with v_0 = g_1^2, against a hand derivation.

The toy: p = (0.5, -2.0), loss = sum(c * p^2) with c = (3, 0.25), so g = 2 c p at every
step. `hand` works the definition out in float64 Python floats.
"""

import io
import math

import pytest
import torch

from warmup_bench.diagnostics import adam_ratios
from warmup_bench.gi_adam import GIAdamW

P0 = [0.5, -2.0]
C = [3.0, 0.25]
G1 = [2 * c * x for c, x in zip(C, P0, strict=True)]  # the first gradient, (3, -1)
LR, EPS = 0.1, 1e-8
F32_RTOL = 1e-6  # float32 parameters against the float64 hand values: ~8 ulps
KERNELS = {"for-loop": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def f64(values):
    return torch.tensor(values, dtype=torch.float64)


def rel_gap(x, y):
    """max |x - y| / |y| over the entries of two nested lists."""
    return float(((f64(x) - f64(y)).abs() / f64(y).abs()).max())


def hand(steps, *, b1, b2, wd, amsgrad=False):
    """Parameters after each step of GI-AdamW on the toy, as float64 Python floats."""
    p, m, v, v_max, out = list(P0), [0.0, 0.0], None, None, []
    for t in range(1, steps + 1):
        g = [2 * c * x for c, x in zip(C, p, strict=True)]
        if v is None:  # v_0 = g_1^2, the GI initialization
            v = [x * x for x in g]
            v_max = list(v)
        p = [x * (1 - LR * wd) for x in p]  # decoupled weight decay first, as AdamW
        m = [b1 * a + (1 - b1) * x for a, x in zip(m, g, strict=True)]
        v = [b2 * a + (1 - b2) * x * x for a, x in zip(v, g, strict=True)]
        v_max = [max(a, b) for a, b in zip(v_max, v, strict=True)]
        second = v_max if amsgrad else v
        p = [x - LR * (a / (1 - b1**t)) / (math.sqrt(b / (1 - b2**t)) + EPS)
             for x, a, b in zip(p, m, second, strict=True)]
        out.append(p)
    return out


def toy(optimizer_class=GIAdamW, dtype=torch.float32, **options):
    p = torch.nn.Parameter(torch.tensor(P0, dtype=dtype))
    c = torch.tensor(C, dtype=dtype)
    optimizer = optimizer_class([p], lr=LR, eps=EPS, **options)

    def step():
        optimizer.zero_grad()
        (c * p**2).sum().backward()
        optimizer.step()
        return p.detach().double().tolist()

    return p, optimizer, step


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
@pytest.mark.parametrize("wd", [0.0, 0.1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_first_two_updates_match_the_hand_derivation(kernel, amsgrad, wd, dtype):
    betas = (0.9, 0.99)
    _, _, step = toy(dtype=dtype, betas=betas, weight_decay=wd, amsgrad=amsgrad,
                     **KERNELS[kernel])
    got = [step(), step()]
    expected = hand(2, b1=betas[0], b2=betas[1], wd=wd, amsgrad=amsgrad)
    # measured: float64 equal to the hand floats on every kernel; float32 within 6e-8
    # relative (a float32 ulp), the updates p_t - p_{t-1} within 4e-6 relative
    rtol = 1e-13 if dtype == torch.float64 else F32_RTOL
    torch.testing.assert_close(f64(got), f64(expected), rtol=rtol, atol=0)


def test_the_hand_values_tell_the_variants_apart():
    """The tolerance above separates GI from plain Adam, AMSGrad from not, decay from none."""
    base = hand(2, b1=0.9, b2=0.99, wd=0.0)
    for other in (hand(2, b1=0.9, b2=0.99, wd=0.0, amsgrad=True),
                  hand(2, b1=0.9, b2=0.99, wd=0.1)):
        assert rel_gap(other, base) > 4 * F32_RTOL
    # the first hand step is the closed form theta_0 - lr sqrt(1-b2) g / (|g| + eps sqrt(1-b2))
    s = math.sqrt(1 - 0.99)
    closed = [x - LR * s * g / (abs(g) + EPS * s) for x, g in zip(P0, G1, strict=True)]
    assert base[0] == pytest.approx(closed, rel=1e-15)
    _, _, plain_step = toy(torch.optim.AdamW, dtype=torch.float64, betas=(0.9, 0.99),
                           weight_decay=0.0)
    plain = plain_step()
    assert rel_gap(plain, base[0]) > 1e-3


@pytest.mark.parametrize("beta2", [0.999, 0.99])
def test_first_update_is_sqrt_one_minus_beta2_of_adamw(beta2):
    updates = {}
    for name, cls in (("gi", GIAdamW), ("adamw", torch.optim.AdamW)):
        p, _, step = toy(cls, dtype=torch.float64, betas=(0.9, beta2), weight_decay=0.0)
        updates[name] = f64(step()) - f64(P0)
    g = f64(G1)
    s = math.sqrt(1 - beta2)
    # exact up to eps: gi / adamw = s (|g| + eps) / (|g| + eps s)
    ratio = updates["gi"] / updates["adamw"]
    torch.testing.assert_close(ratio, s * (g.abs() + EPS) / (g.abs() + EPS * s),
                               rtol=1e-12, atol=0)
    torch.testing.assert_close(ratio, torch.full_like(ratio, s), rtol=1e-7, atol=0)
    torch.testing.assert_close(updates["adamw"], -LR * g.sign(), rtol=1e-7, atol=0)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("amsgrad", [False, True], ids=["adam", "amsgrad"])
def test_state_after_step_one_differs_from_adamw_only_in_v(kernel, amsgrad):
    b2 = 0.999
    options = {"betas": (0.9, b2), "weight_decay": 0.01, "amsgrad": amsgrad,
               **KERNELS[kernel]}
    states, grads = {}, {}
    for name, cls in (("gi", GIAdamW), ("adamw", torch.optim.AdamW)):
        p, optimizer, step = toy(cls, **options)
        step()
        states[name], grads[name] = optimizer.state[p], p.grad.clone()
    gi, plain, g = states["gi"], states["adamw"], grads["gi"]
    assert torch.equal(grads["gi"], grads["adamw"])
    assert gi.keys() == plain.keys()
    for key in ("step", "exp_avg"):  # same tensors: value, dtype, device
        assert torch.equal(gi[key], plain[key])
        assert (gi[key].dtype, gi[key].device) == (plain[key].dtype, plain[key].device)
    assert gi["step"].dtype == torch.float32 and gi["step"].device.type == "cpu"
    # v_1 = b2 g^2 + (1 - b2) g^2 = g^2 (rounded once or twice in float32), AdamW's (1-b2) g^2
    torch.testing.assert_close(gi["exp_avg_sq"], g * g, rtol=2.5e-7, atol=0)
    torch.testing.assert_close(plain["exp_avg_sq"], (1 - b2) * g * g, rtol=1e-6, atol=0)
    if amsgrad:
        torch.testing.assert_close(gi["max_exp_avg_sq"], g * g, rtol=2.5e-7, atol=0)
        assert torch.equal(plain["max_exp_avg_sq"], plain["exp_avg_sq"])


def linear_run(optimizer_options, steps, model=None, optimizer=None, start=0):
    """Train Linear(4, 3) on fixed data with GIAdamW from step `start` up to `steps`."""
    if model is None:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        optimizer = GIAdamW(model.parameters(), lr=0.05, weight_decay=0.01,
                            **optimizer_options)
    data = torch.Generator().manual_seed(1)
    x, y = torch.randn(8, 4, generator=data), torch.randn(8, 3, generator=data)
    for _ in range(start, steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("kernel", KERNELS)
def test_checkpoint_round_trip_continues_bit_for_bit(kernel):
    options = KERNELS[kernel]
    straight, _ = linear_run(options, 10)

    model, optimizer = linear_run(options, 5)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)

    torch.manual_seed(123)  # a different initialization, overwritten by the checkpoint
    resumed_model = torch.nn.Linear(4, 3)
    resumed_model.load_state_dict(checkpoint["model"])
    resumed_optimizer = GIAdamW(resumed_model.parameters(), lr=0.05, weight_decay=0.01,
                                **options)
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    assert resumed_optimizer.state_dict()["state"].keys() == checkpoint["optimizer"]["state"].keys()
    linear_run(options, 10, resumed_model, resumed_optimizer, start=5)

    for a, b in zip(straight.parameters(), resumed_model.parameters(), strict=True):
        assert torch.equal(a, b)
    # and the run is not plain AdamW's
    torch.manual_seed(0)
    plain_model = torch.nn.Linear(4, 3)
    plain = torch.optim.AdamW(plain_model.parameters(), lr=0.05, weight_decay=0.01, **options)
    linear_run(options, 10, plain_model, plain)
    assert not torch.equal(plain_model.weight, straight.weight)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("beta2", [0.999, 0.99])
def test_adam_ratios_after_step_one(kernel, beta2):
    """diagnostics.adam_ratios: |r| = 1 for AdamW at t = 1, sqrt(1 - beta2) for GI-AdamW
    (0.0316 at beta2 = 0.999), and 0 where the gradient is 0."""
    ratios = {}
    for name, cls in (("gi", GIAdamW), ("adamw", torch.optim.AdamW)):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 3)
        optimizer = cls(model.parameters(), lr=0.01, betas=(0.9, beta2),
                        **KERNELS[kernel])
        x, y = torch.randn(8, 4), torch.randn(8, 3)
        torch.nn.functional.mse_loss(model(x), y).backward()
        model.weight.grad[0, 0] = 0.0  # one coordinate with no gradient
        optimizer.step()
        ratios[name] = adam_ratios(optimizer)
    assert len(ratios["gi"]) == len(ratios["adamw"]) == 2
    s = math.sqrt(1 - beta2)
    for gi, plain in zip(ratios["gi"], ratios["adamw"], strict=True):
        nonzero = plain != 0
        torch.testing.assert_close(plain[nonzero].abs(), torch.ones_like(plain[nonzero]),
                                   rtol=1e-5, atol=0)
        torch.testing.assert_close(gi[nonzero].abs(), torch.full_like(gi[nonzero], s),
                                   rtol=1e-5, atol=0)
        assert torch.equal(gi.sign(), plain.sign())
    assert ratios["gi"][0][0, 0] == 0 and ratios["adamw"][0][0, 0] == 0
    assert int((ratios["gi"][0] == 0).sum()) == 1


def test_complex_parameters_follow_their_real_view():
    """As torch's kernels do: a complex parameter steps like its (re, im) real view."""
    for options in ({}, {"foreach": True}):
        z = torch.nn.Parameter(torch.tensor([0.5 + 1j, -2.0 - 0.5j]))
        r = torch.nn.Parameter(torch.view_as_real(z.detach()).clone())
        opt_z = GIAdamW([z], lr=LR, **options)
        opt_r = GIAdamW([r], lr=LR, **options)
        for _ in range(3):
            for p, optimizer in ((z, opt_z), (r, opt_r)):
                optimizer.zero_grad()
                (torch.view_as_real(p) if p.is_complex() else p).pow(2).mul(
                    torch.tensor([[3.0, 1.0], [0.25, 2.0]])).sum().backward()
                optimizer.step()
        torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=1e-6,
                                   atol=0)
        torch.testing.assert_close(torch.view_as_real(opt_z.state[z]["exp_avg_sq"]),
                                   opt_r.state[r]["exp_avg_sq"], rtol=1e-6, atol=0)


def test_grad_scaler_with_fused_step():
    """fused=True under a GradScaler: v_0 is the unscaled g^2, and a first step skipped for
    an inf leaves the state empty, so the next finite step is the GI first step."""
    p, optimizer, _ = toy(fused=True, betas=(0.9, 0.999), weight_decay=0.0)
    c = torch.tensor(C)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale((c * p**2).sum() * float("inf")).backward()
    scaler.step(optimizer)
    scaler.update()
    assert not optimizer.state.get(p)
    assert p.detach().tolist() == P0
    optimizer.zero_grad()
    scaler.scale((c * p**2).sum()).backward()
    scaler.step(optimizer)
    scaler.update()
    g = torch.tensor(G1)
    torch.testing.assert_close(optimizer.state[p]["exp_avg_sq"], g * g, rtol=2.5e-7, atol=0)
    torch.testing.assert_close(p.detach().double(),
                               f64(hand(1, b1=0.9, b2=0.999, wd=0.0)[0]), rtol=F32_RTOL, atol=0)
