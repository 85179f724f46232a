r"""GI-AdamW: AdamW whose second moment starts at the squared first gradient.

Kalra & Barkeshli, "Why Warmup the Learning Rate? Underlying Mechanisms and Improvements",
NeurIPS 2024 (arXiv 2406.09405), propose GI-Adam ("gradient-initialized Adam"): Adam with
v_0 = g_0^2, the squared gradient at initialization, in place of v_0 = 0.

The definition implemented here, per coordinate, with g_t the gradient of step t; everything
but v_0 is AdamW's, both bias corrections 1 - beta1^t and 1 - beta2^t included:

    m_0 = 0,  v_0 = g_1^2   (and v_0^max = g_1^2 with amsgrad)
    theta <- theta (1 - lr wd)                          (decoupled weight decay, as AdamW)
    m_t = beta1 m_{t-1} + (1 - beta1) g_t,   m_hat = m_t / (1 - beta1^t)
    v_t = beta2 v_{t-1} + (1 - beta2) g_t^2, v_hat = v_t / (1 - beta2^t)   (amsgrad: max)
    theta <- theta - lr m_hat / (sqrt(v_hat) + eps)

g_0 is g_1, the gradient of the first step (taken at the initial parameters, on the first
training batch). The authors' public code (github.com/dayal-kalra/why-warmup,
vision/mechanisms/train_*_grads_adam_lobpcg.py) instead draws one batch from the training
stream before the loop, computes `grads_init` on it at the initial parameters, builds the
optimizer with it, and starts training on the next batch. Using g_1 costs no extra
forward/backward pass, leaves the data stream as it is (runs with and without GI see the
same batches), and fits torch's optimizer interface, which only sees the gradient handed to
step(); both g_0 and g_1 are minibatch gradients at the same parameters. (With a separate
g_0 the first update is about sqrt(1 - beta2) g_1 / |g_0| instead of sqrt(1 - beta2)
sign(g_1).) The authors' optimizer itself (utils/optim_utils.adam_init, an optax
transformation) is not in the stored copy of that repository, so how it bias-corrects could
not be read; the bias corrections here are Adam's, unchanged, which is what setting the
initial nu of optax's scale_by_adam (or torch's exp_avg_sq) to g^2 gives.

At t = 1: m_1 = (1 - beta1) g_1 and v_1 = beta2 g_1^2 + (1 - beta2) g_1^2 = g_1^2, so
m_hat = g_1 and v_hat = g_1^2 / (1 - beta2); the first update is

    theta_1 = theta_0 (1 - lr wd) - lr sqrt(1 - beta2) g_1 / (|g_1| + eps sqrt(1 - beta2)),

sqrt(1 - beta2) times AdamW's first step lr g_1 / (|g_1| + eps) (0.0316 at beta2 = 0.999),
up to the eps term. For a constant gradient, |m_hat / sqrt(v_hat)| = sqrt(1 - beta2^t): an
implicit warmup over about 1 / (1 - beta2) steps, with no schedule.

The implementation only changes the lazy state initialization: when a parameter's state is
empty at step(), torch's own `_init_group` builds it (step counter of torch's dtype and
device for the chosen kernel, exp_avg zeros), then exp_avg_sq (and max_exp_avg_sq) are
filled with grad^2 in place, and torch's AdamW step (for-loop, foreach or fused) runs
unchanged. The state dict is AdamW's, so save/load round-trips and a resumed run continues
bit-for-bit. Complex parameters are handled as torch does, on their real view (v_0 holds
re(g)^2 and im(g)^2). Under a GradScaler with fused=True the gradients are still scaled when
the state is built: v_0 uses grad / grad_scale; a first step with an inf or nan gradient,
which the fused kernel skips, leaves the state empty, so the next finite step builds it.
"""

from __future__ import annotations

import torch


class GIAdamW(torch.optim.AdamW):
    """torch.optim.AdamW with v_0 = g_1^2 (GI-Adam, Kalra & Barkeshli 2024); the module
    docstring states the math. Takes exactly AdamW's arguments."""

    def _init_group(self, group, params_with_grad, grads, exp_avgs, exp_avg_sqs,
                    max_exp_avg_sqs, state_steps):
        fresh = [p for p in group["params"] if p.grad is not None and not self.state.get(p)]
        has_complex = super()._init_group(group, params_with_grad, grads, exp_avgs,
                                          exp_avg_sqs, max_exp_avg_sqs, state_steps)
        if not fresh:
            return has_complex
        # GradScaler with fused=True: the gradients are still scaled, and an inf/nan makes
        # the kernel skip the step (one host sync, on a parameter's first step only)
        grad_scale, found_inf = getattr(self, "grad_scale", None), getattr(self, "found_inf", None)
        if found_inf is not None and found_inf.item():
            for p in fresh:  # the skipped step updates detached tensors; retry on the next
                del self.state[p]
            return has_complex
        for p in fresh:
            state = self.state[p]
            g = p.grad if grad_scale is None else p.grad / grad_scale.to(p.grad.device)
            targets = [state["exp_avg_sq"]]
            if group["amsgrad"]:
                targets.append(state["max_exp_avg_sq"])
            if torch.is_complex(p):  # as torch's kernels do: the real view, per component
                g, targets = torch.view_as_real(g), [torch.view_as_real(v) for v in targets]
            for v in targets:
                v.copy_(g * g)
        return has_complex
