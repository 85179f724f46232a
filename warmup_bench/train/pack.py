"""Packed training, the arithmetic (the loop and lifecycle are a run alone's: train.loop,
train.run): M runs of one architecture trained as one vectorised
model, so a GPU that one small run leaves idle does M runs' work per kernel launch.

The members' weights are stacked, W[m] = member m's (torch.func.stack_module_state), and
the forward is vmap(functional_call) over the member dimension: member m's logits are
f(W[m], x[m]), its own batch through its own weights. The loss is the sum of the members'
own losses, so W.grad[m] is exactly d loss_m / d W[m]: no member's gradient depends on
another's. Everything else stays per member and is the solo run's own object: each
member's nn.Module holds views W[m] (evaluation, checkpoints and diagnostics use it as a
run alone would), its torch optimizer steps its own views, its warmup and schedule set
its own LR, its loader draws its own batches and augmentation, its generator its dropout
masks (models.dropout), and BatchNorm keeps running statistics per member.

What differs from the run alone is only the forward/backward arithmetic: vmap turns a
convolution over stacked weights into one grouped convolution and a linear layer into a
batched matmul, whose sums are reassociated (measured bounds in docs/packing.md).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, vmap

from ..config import DECLARED, TrainConfig
from ..models.dropout import member_generators
from .build import Net

# the settings a pack's members share: everything that shapes the computation (the task,
# model, data, batch size, epochs, optimizer, schedule kind, ...); the others (seed, lr,
# betas, warmup, ...) are each member's own, declared `per_member` in config.py
SHARED_SETTINGS = tuple(name for name, s in DECLARED.items() if not s.per_member)


def pack_key(cfg: TrainConfig) -> tuple:
    """Runs with equal keys can train in one pack."""
    return tuple(getattr(cfg, name) for name in SHARED_SETTINGS)


class PackedModel:
    """The members' models as one: stacked parameters and buffers, which each member's
    own module views (W[m]), and a forward that vmaps one template over them."""

    def __init__(self, models: list[nn.Module]):
        # the template only lends its code and its train/eval mode to functional_call: its
        # own tensors are never used (on the meta device they hold no memory)
        self.template = copy.deepcopy(models[0]).to("meta")
        tie_like(self.template, models[0])
        self.bind(models)

    def bind(self, models: list[nn.Module]) -> None:
        """Stacks the members' current weights and buffers, and points every member's
        module at its slice (after a member leaves, the rest are stacked again)."""
        self.models = list(models)
        names = [name for name, _ in models[0].named_parameters()]
        own = [dict(m.named_parameters()) for m in models]
        self.params = {n: torch.stack([o[n].detach() for o in own]).requires_grad_(
            own[0][n].requires_grad) for n in names}
        self.member_params = [[o[n] for n in names] for o in own]
        for k, o in enumerate(own):
            for n in names:
                o[n].data = self.params[n].detach()[k]
        self.buffers = {}
        for name, _ in models[0].named_buffers():
            self.buffers[name] = torch.stack([m.get_buffer(name) for m in models])
            module, _, leaf = name.rpartition(".")
            for k, m in enumerate(models):
                m.get_submodule(module)._buffers[leaf] = self.buffers[name][k]
        self._forward = vmap(self._member_forward, randomness="error")

    def _member_forward(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.template, (params, buffers), (x,))

    def train(self) -> None:
        self.template.train()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (M, B, classes) of the members' batches x (M, B, ...)."""
        return self._forward(self.params, self.buffers, x)

    def losses(self, batches: list[tuple[torch.Tensor, torch.Tensor]], nets: list[Net]
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's loss and correct predictions on its own batch (shape (M,)), and
        each member's own gradients, handed out to its parameters."""
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        with nets[0].autocast(), member_generators([net.generator for net in nets]):
            logits = self(x)
            losses = torch.stack([net.criterion(logits[p].float(), y[p])
                                  for p, net in enumerate(nets)])
        self.zero_grad()
        losses.sum().backward()  # d(sum)/d loss_m = 1: each member's own gradient
        self.hand_out_gradients()
        return losses.detach(), (logits.detach().argmax(-1) == y).flatten(1).sum(1)

    def zero_grad(self) -> None:
        for p in self.params.values():
            p.grad = None

    def hand_out_gradients(self) -> None:
        """Each member's parameters get their slice of the stacked gradients (views)."""
        grads = [p.grad for p in self.params.values()]
        for k, params in enumerate(self.member_params):
            for p, g in zip(params, grads):
                p.grad = g[k] if g is not None else None


def tie_like(template: nn.Module, model: nn.Module) -> None:
    """The parameters `model` shares between modules (a language model's tied input and
    output embeddings) shared alike in `template`, whose move to the meta device untied
    them: functional_call then hands each tied name the member's one tensor."""
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    for first, *others in names.values():
        for other in others:
            module, _, leaf = other.rpartition(".")
            setattr(template.get_submodule(module), leaf, template.get_parameter(first))


def is_out_of_memory(error: BaseException) -> bool:
    """torch's out-of-memory errors: CUDA's OutOfMemoryError, and the CPU allocator's."""
    if isinstance(error, torch.OutOfMemoryError):
        return True
    text = str(error)
    return isinstance(error, RuntimeError) and ("out of memory" in text or
                                                "can't allocate memory" in text)
