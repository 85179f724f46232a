"""Per-step diagnostics: the quantities the warmup papers argue with.

At a log step, `StepProbe` measures around `optimizer.step()`:

  grad_norm            ||g||_2 over all parameters (before any clipping)
  param_norm           ||theta||_2 before the step
  update_norm          ||delta theta||_2, delta theta = theta_after - theta_before
  relative_update      ||delta theta|| / ||theta||
  max_layer_relative_update   the largest ||delta W|| / ||W|| over weight tensors (ndim >= 2)
  angular_update_mean / _max  angle between W before and after the step, over weight tensors
  r_abs_mean, r_frac_above_half, r_abs_max
                       Adam family: r = m_hat / (sqrt(v_hat) + eps), the per-coordinate step
                       that multiplies the LR (Ma & Yarats: at t = 1, r = sign(g))
  momentum_norm        SGD: ||momentum buffer||

Every `layer_every` log steps it also writes one row per weight tensor (layers.csv).
All of it is computed on the device; the row reaches the host in one transfer.

`Sharpness` estimates the top Hessian eigenvalue of the training loss on a fixed probe
batch by power iteration on Hessian-vector products (warm-started from the last vector),
and for the Adam family the top eigenvalue of P^-1 H with P = diag(sqrt(v_hat) + eps).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from .runs.schema import (
    DIAGNOSTICS_CSV,
    LAYER_STATS,
    LAYERS_CSV,
    SHARPNESS_STATS,
    STEP_STATS,
)

# the columns of diagnostics.csv and layers.csv (runs.schema declares them): StepProbe.after
# fills STEP_STATS and LAYER_STATS by name, Sharpness.estimate the rest
DIAGNOSTIC_COLUMNS = DIAGNOSTICS_CSV.names()
LAYER_COLUMNS = LAYERS_CSV.names()
LAYER_EVERY = 10  # layers.csv is written every LAYER_EVERY-th log step
NAN = float("nan")


def _norms(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(torch._foreach_norm(tensors)) if tensors else torch.zeros(0)


def _total(norms: torch.Tensor) -> torch.Tensor:
    return norms.square().sum().sqrt()


def angles(before: list[torch.Tensor], after: list[torch.Tensor]) -> torch.Tensor:
    """The angle between each pair of tensors, 2 atan2(|a - b|, |a + b|) of the unit
    vectors: accurate for the tiny angles of one step, where arccos(cos) is not."""
    a = torch._foreach_div(before, [n.clamp_min(1e-30) for n in torch._foreach_norm(before)])
    b = torch._foreach_div(after, [n.clamp_min(1e-30) for n in torch._foreach_norm(after)])
    difference = _norms(torch._foreach_sub(a, b))
    torch._foreach_add_(a, b)  # a is a temporary: a + b in place, one buffer fewer
    return 2 * torch.atan2(difference, _norms(a))


def adam_states(optimizer: torch.optim.Optimizer) -> list[tuple] | None:
    """(parameter, its state, its group) of every parameter with Adam state; None for an
    optimizer without Adam's betas."""
    states = []
    for group in optimizer.param_groups:
        if "betas" not in group:
            return None
        for p in group["params"]:
            state = optimizer.state.get(p)
            if state and "exp_avg" in state:
                states.append((p, state, group))
    return states


def adam_denominator(state: dict, group: dict) -> torch.Tensor:
    """sqrt(v_hat) + eps, Adam's per-coordinate preconditioner (AMSGrad: the running
    maximum of v; Adamax: u + eps, an infinity-norm second moment, not averaged), as a
    fresh tensor: the same operations in the same order, updated in place."""
    if "exp_inf" in state:
        return state["exp_inf"] + group["eps"]
    t = float(state["step"])  # a 0-dim CPU tensor in torch's optimizers: no sync
    v = state["max_exp_avg_sq"] if group.get("amsgrad") else state["exp_avg_sq"]
    return (v / (1 - group["betas"][1] ** t)).sqrt_().add_(group["eps"])


def adam_ratios(optimizer: torch.optim.Optimizer) -> list[torch.Tensor] | None:
    """r = m_hat / (sqrt(v_hat) + eps) of every parameter with Adam state; None for other
    optimizers. The parameters that share a group, a step and a kind of second moment
    are computed together with multi-tensor ops (a few kernels, not a few per tensor on a
    GPU): the same elementwise operations, so the same floats as adam_denominator's."""
    states = adam_states(optimizer)
    together: dict[tuple, list[dict]] = {}
    for _, state, group in states or ():
        kind = "exp_inf" if "exp_inf" in state else \
            "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
        together.setdefault((id(group), float(state["step"]), kind), []).append(state)
    groups = {id(g): g for _, _, g in states or ()}
    ratios = []
    for (group_id, t, kind), members in together.items():
        group = groups[group_id]
        beta1, beta2 = group["betas"]
        m_hat = torch._foreach_div([s["exp_avg"] for s in members], 1 - beta1 ** t)
        moments = [s[kind] for s in members]
        if kind == "exp_inf":  # Adamax: u + eps
            denominators = torch._foreach_add(moments, group["eps"])
        else:
            denominators = torch._foreach_div(moments, 1 - beta2 ** t)
            torch._foreach_sqrt_(denominators)
            torch._foreach_add_(denominators, group["eps"])
        torch._foreach_div_(m_hat, denominators)
        ratios.extend(m_hat)
    return ratios or None


def ratio_stats(ratios: list[torch.Tensor]) -> list[torch.Tensor]:
    """Mean |r|, the fraction of coordinates with |r| > 1/2, and max |r|, over every
    coordinate (`ratios` are made absolute in place: they are temporaries)."""
    count = sum(r.numel() for r in ratios)
    torch._foreach_abs_(ratios)
    if ratios[0].device.type != "cpu":  # one concatenated copy: 4 kernels, not 3 a tensor
        flat = torch.cat([r.flatten() for r in ratios])
        return [flat.sum() / count, torch.count_nonzero(flat > 0.5) / count, flat.amax()]
    # on a CPU per tensor, then over tensors: no concatenated copy (torch's CPU inf- and
    # 1-norms are several times slower than amax and sum, so not those either)
    total = torch.stack([r.sum() for r in ratios]).sum()
    above = torch.stack([torch.count_nonzero(r > 0.5) for r in ratios]).sum()
    largest = torch.stack([r.amax() for r in ratios]).amax()
    return [total / count, above / count, largest]


def momentum_buffers(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [s["momentum_buffer"] for s in optimizer.state.values()
            if s.get("momentum_buffer") is not None]


class StepProbe:
    """Measures one optimizer step: call `before()` once the gradients are complete and
    `after()` once optimizer.step() has run (only on the steps that log)."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.params = [p for _, p in named]
        self.weights = [i for i, (_, p) in enumerate(named) if p.ndim >= 2]
        self.layer_names = [named[i][0] for i in self.weights]
        self.optimizer = optimizer
        self.before_params: list[torch.Tensor] = []
        self.grad_norms = torch.zeros(0)

    def before(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.grad_norms = _norms([g.detach() for g in grads])
        # one multi-tensor copy (x * 1 is x, signed zeros and NaNs included)
        self.before_params = torch._foreach_mul([p.detach() for p in self.params], 1.0)

    def after(self, step: int, with_layers: bool) -> tuple[dict, list[dict]]:
        """The diagnostics row, and the per-layer rows when `with_layers`."""
        after = [p.detach() for p in self.params]
        param_norms = _norms(self.before_params)
        update_norms = _norms(torch._foreach_sub(after, self.before_params))
        w = self.weights
        layer_relative = update_norms[w] / param_norms[w].clamp_min(1e-30)
        layer_angles = angles([self.before_params[i] for i in w], [after[i] for i in w])
        ratios = adam_ratios(self.optimizer)
        r_stats = ratio_stats(ratios) if ratios is not None else [torch.tensor(NAN)] * 3
        buffers = momentum_buffers(self.optimizer)
        momentum = _total(_norms(buffers)) if buffers else torch.tensor(NAN)
        device = param_norms.device
        stats = {  # the columns of STEP_STATS, by name
            "grad_norm": _total(self.grad_norms), "param_norm": _total(param_norms),
            "update_norm": _total(update_norms),
            "relative_update": _total(update_norms) / _total(param_norms).clamp_min(1e-30),
            "max_layer_relative_update": layer_relative.max() if w else torch.tensor(NAN),
            "angular_update_mean": layer_angles.mean(),
            "angular_update_max": layer_angles.max() if w else torch.tensor(NAN),
            **dict(zip(("r_abs_mean", "r_frac_above_half", "r_abs_max"), r_stats)),
            "momentum_norm": momentum}
        values = torch.stack([stats[c].to(device, torch.float32) for c in STEP_STATS])
        layer_stats = {"relative_update": layer_relative, "angular_update": layer_angles,
                       "grad_norm": self.grad_norms[w].to(device)}
        if with_layers:
            values = torch.cat([values, torch.stack([layer_stats[c] for c in LAYER_STATS])
                                .flatten()])
        numbers = values.tolist()  # host sync: the one transfer of a log step
        self.before_params = []
        row = {"step": step, **dict(zip(STEP_STATS, numbers)),
               **dict.fromkeys(SHARPNESS_STATS, NAN)}
        layers = []
        if with_layers:
            n = len(w)
            per_layer = {c: numbers[len(STEP_STATS) + i * n:len(STEP_STATS) + (i + 1) * n]
                         for i, c in enumerate(LAYER_STATS)}
            layers = [{"step": step, "layer": name, **{c: per_layer[c][i] for c in LAYER_STATS}}
                      for i, name in enumerate(self.layer_names)]
        return row, layers


# ---- sharpness ----------------------------------------------------------------------


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def power_iteration(matvec: Callable[[list[torch.Tensor]], list[torch.Tensor]],
                    start: list[torch.Tensor], iterations: int = 20, tol: float = 1e-5
                    ) -> tuple[float, list[torch.Tensor]]:
    """The eigenvalue of largest magnitude of a symmetric linear map given as `matvec` on
    lists of tensors, and its unit eigenvector, by power iteration from `start`. Stops
    when the Rayleigh quotient changes by less than `tol` (relative)."""
    norm = _dot(start, start).sqrt()
    v = [x / norm for x in start]
    value = math.nan
    for _ in range(iterations):
        w = matvec(v)
        new_value = float(_dot(v, w))  # host sync: once per power iteration
        norm = _dot(w, w).sqrt()
        if float(norm) == 0.0:
            return 0.0, v
        v = [x / norm for x in w]
        if abs(new_value - value) <= tol * abs(new_value):
            return new_value, v
        value = new_value
    return value, v


class Sharpness:
    """Top Hessian eigenvalue of the loss on one fixed probe batch, in eval mode (dropout
    off, BatchNorm on its running statistics, so no randomness is drawn), plus the
    preconditioned one for Adam-family optimizers. Vectors persist between estimates
    (warm start) and are saved with the checkpoint so resuming changes nothing."""

    def __init__(self, model: torch.nn.Module, criterion, x: torch.Tensor, y: torch.Tensor,
                 seed: int, iterations: int = 20):
        self.model, self.criterion, self.x, self.y = model, criterion, x, y
        self.params = [p for p in model.parameters() if p.requires_grad]
        generator = torch.Generator().manual_seed(seed)
        self.vectors = {kind: [torch.randn(p.shape, generator=generator).to(p) for p in
                               self.params] for kind in ("plain", "preconditioned")}
        self.iterations = iterations

    def estimate(self, optimizer: torch.optim.Optimizer, lr: float) -> dict:
        was_training = self.model.training
        self.model.eval()
        try:
            # attention's fused kernels have no double backward: the math one does
            with torch.enable_grad(), sdpa_kernel([SDPBackend.MATH]):
                loss = self.criterion(self.model(self.x).float(), self.y)
                grads = torch.autograd.grad(loss, self.params, create_graph=True)

            def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:
                return [h.detach() for h in torch.autograd.grad(
                    grads, self.params, grad_outputs=v, retain_graph=True)]

            sharpness, self.vectors["plain"] = power_iteration(
                hvp, self.vectors["plain"], self.iterations)
            result = {"sharpness": sharpness, "preconditioned_sharpness": NAN,
                      "sharpness_threshold": 2.0 / lr}
            scales = preconditioner_scales(optimizer, self.params)
            if scales is not None:  # P^-1/2 H P^-1/2 has the eigenvalues of P^-1 H
                def preconditioned(v):
                    return [s * h for s, h in zip(scales, hvp([s * x for s, x in zip(scales, v)]))]
                value, self.vectors["preconditioned"] = power_iteration(
                    preconditioned, self.vectors["preconditioned"], self.iterations)
                beta1 = optimizer.param_groups[0]["betas"][0]
                result.update(preconditioned_sharpness=value,
                              sharpness_threshold=(2 + 2 * beta1) / ((1 - beta1) * lr))
            return result
        finally:
            self.model.train(was_training)

    def state_dict(self) -> dict:
        return {kind: [v.detach().cpu() for v in vs] for kind, vs in self.vectors.items()}

    def load_state_dict(self, state: dict) -> None:
        self.vectors = {kind: [v.to(p) for v, p in zip(vs, self.params)]
                        for kind, vs in state.items()}


def preconditioner_scales(optimizer: torch.optim.Optimizer,
                          params: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """P^-1/2 per parameter, P = sqrt(v_hat) + eps (Adam's preconditioner); None when the
    optimizer keeps no second moment yet (or is no Adam, or is Adamax)."""
    states = adam_states(optimizer)
    every = [p for g in optimizer.param_groups for p in g["params"]]
    if not states or len(states) != len(every) or any("exp_avg_sq" not in s for _, s, _ in
                                                      states):
        return None
    by_param = {p: adam_denominator(state, group).rsqrt_() for p, state, group in states}
    return [by_param[p] for p in params]


class LogitProbe:
    """A Transformer's instability signals on a fixed probe batch (eval mode, no gradient,
    no random number drawn): per attention block the largest and the root-mean-square
    attention logit (Wortsman et al.'s attention-logit growth), then the output logits'
    largest magnitude and root mean square (their output-logit divergence). Blocks are
    found by their `logit_stats(x)` method (models.gpt's attention has one)."""

    def __init__(self, model: torch.nn.Module, x: torch.Tensor):
        self.model, self.x = model, x
        self.blocks = [m for m in model.modules() if callable(getattr(m, "logit_stats", None))]

    @staticmethod
    def applies(model: torch.nn.Module) -> bool:
        return any(callable(getattr(m, "logit_stats", None)) for m in model.modules())

    def measure(self, step: int) -> list[dict]:
        """The rows of logits.csv for `step`: one per block, then the output's."""
        stats = []
        hooks = [block.register_forward_pre_hook(
            lambda module, args: stats.append(module.logit_stats(args[0])))
            for block in self.blocks]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                logits = self.model(self.x).float()
        finally:
            for hook in hooks:
                hook.remove()
            self.model.train(was_training)
        stats.append(torch.stack([logits.abs().amax(), logits.square().mean().sqrt()]))
        values = torch.stack(stats).tolist()  # host sync: one transfer, log steps only
        names = [f"attention {k}" for k in range(len(self.blocks))] + ["output"]
        return [{"step": step, "logits": name, "max": high, "rms": rms}
                for name, (high, rms) in zip(names, values)]


class Monitor:
    """What --diagnostics (and --sharpness-every) add to the training loop's log steps:
    `before_step()` at the seam after backward, `after_step()` after optimizer.step()."""

    def __init__(self, probe: StepProbe, sharpness: Sharpness | None,
                 sharpness_every: int | None, log_interval: int, diagnostics_log, layers_log,
                 logit_probe: LogitProbe | None = None, logits_log=None):
        self.probe, self.sharpness, self.sharpness_every = probe, sharpness, sharpness_every
        self.log_interval = log_interval
        self.diagnostics_log, self.layers_log = diagnostics_log, layers_log
        self.logit_probe, self.logits_log = logit_probe, logits_log

    def before_step(self) -> None:
        self.probe.before()

    def after_step(self, step: int, lr: float) -> None:
        log_step = (step - 1) % self.log_interval == 0  # else one of the first, dense steps
        with_layers = log_step and (step - 1) // self.log_interval % LAYER_EVERY == 0
        row, layers = self.probe.after(step, with_layers)
        if self.sharpness is not None and (step - 1) % self.sharpness_every == 0:
            row.update(self.sharpness.estimate(self.probe.optimizer, lr))
        self.diagnostics_log.append(row)
        for layer in layers:
            self.layers_log.append(layer)
        if self.logit_probe is not None and log_step:  # at the log interval only
            for logit_row in self.logit_probe.measure(step):
                self.logits_log.append(logit_row)
