"""Dropout whose masks are drawn fast on the CPU.

The function is torch's: y = x * m / (1 - p), with m_i ~ Bernoulli(1 - p) independent, and
the gradient is dy * m / (1 - p). Only the generator of m changes, and only on the CPU:

- torch's CPU `bernoulli_` draws each element on its own, serially, from the Mersenne
  Twister through a double-precision uniform (on Intel CPUs it uses MKL's generator
  instead), slowly enough that a third of a ViT training step went to it (16 blocks drop
  19M activations per step; docs/cpu-speed.md has the measurements).
- Here each call takes one 64-bit key from torch's default generator and draws the mask
  from NumPy's PCG64 keyed with it, 8 random bits for most elements (`keep_mask`): an
  order of magnitude faster, conversion and scaling included. Because the key comes from torch's
  generator, `torch.manual_seed` fixes every mask and a checkpoint of torch's RNG state
  resumes the stream; the masks are the same on every CPU, Intel or not.

For the same mask the floats are torch's, forward and backward. Elsewhere (CUDA, MPS,
p of 0 or 1, evaluation, torch.compile) this is `F.dropout`: CUDA's fused dropout is
already fast, and a compiled graph draws its own masks.

Packed training (train.pack) runs several models as one under `torch.func.vmap`; there
each member's masks come from that member's own generator (`member_generators`). On the
CPU that is one key per call, as a solo run takes from torch's generator, so a member's
masks are its solo run's, bit for bit. On other devices a whole dropout site is drawn for
every member at once (`counter_noise`): each member's generator gives one key per
forward, and the mask of element i at site s is a hash of (key, s, i), so the masks are
per member (another member, or none, beside it changes nothing), reproducible and
resumable (the generators are checkpointed), at a few elementwise kernels per site
instead of a generator, a sampler and a multiply per member; they are not CUDA's fused
masks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def keep_mask(n: int, p: float, generator: np.random.PCG64) -> np.ndarray:
    """n independent bools, each True with probability 1 - p to within 2^-41.

    Exact Bernoulli sampling by lazy comparison, most elements settled by 8 bits: with
    (1 - p) 256 = k + f (k whole, 0 <= f < 1) and u a random byte, u < k keeps and u > k
    drops; only u == k (1 in 256) needs 32 more bits v, keeping when v < f 2^32. That is
    a quarter of the random bits of one 32-bit draw per element, at a 2^-41 tolerance."""
    scaled = (1 - p) * 256
    whole = math.floor(scaled)
    draws = generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
    keep = draws < whole
    ties = np.flatnonzero(draws == whole)
    if len(ties):
        more = generator.random_raw((len(ties) + 1) // 2).view(np.uint32)[:len(ties)]
        keep[ties] = more < round((scaled - whole) * 2**32)
    return keep


def dropout_noise(shape: torch.Size, p: float, dtype: torch.dtype,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """m / (1 - p) on the CPU, m ~ Bernoulli(1 - p) elementwise: torch's dropout noise."""
    # one draw of torch's generator per mask: seeded and checkpointed with torch's state
    key = int(torch.empty((), dtype=torch.int64).random_(generator=generator))
    keep = keep_mask(math.prod(shape), p, np.random.PCG64(key))
    # NumPy here: torch converts bool to float several times slower than it multiplies,
    # NumPy's convert and scale are faster than torch's convert alone
    # (bf16's and fp16's 1 / (1 - p) are float32 numbers: exact here, exact after .to)
    wide = np.float64 if dtype == torch.float64 else np.float32
    noise = keep.astype(wide)
    noise *= wide(inverse_keep(p, dtype))
    return torch.from_numpy(noise).view(shape).to(dtype)


@functools.cache
def inverse_keep(p: float, dtype: torch.dtype) -> float:
    """1 / (1 - p) rounded as torch's CPU dropout rounds it: in `dtype`."""
    return float(torch.ones((), dtype=dtype).div_(1 - p))


def numpy_device(device: torch.device) -> bool:
    """Whether masks on `device` come from NumPy (the CPU); elsewhere from torch there.
    The one place that branch is decided, so a CPU test can force the other one."""
    return device.type == "cpu"


def numpy_masks(x: torch.Tensor, p: float, training: bool) -> bool:
    """Whether dropout on `x` draws its masks here: in training, with 0 < p < 1, on the
    CPU and not under torch.compile (which generates its own masks, in the graph)."""
    return training and 0 < p < 1 and numpy_device(x.device) and \
        not torch.compiler.is_compiling()


@dataclass
class PackForward:
    """One forward of a pack: each member's generator, and (off the CPU) the keys this
    forward drew from them and how many dropout sites it has passed."""

    generators: list[torch.Generator]
    keys: torch.Tensor | None = None  # one per member, drawn at the first site
    site: int = 0


_members: PackForward | None = None  # while a pack's forward runs


@contextmanager
def member_generators(generators: list[torch.Generator]) -> Iterator[None]:
    """Dropout under vmap (a pack's forward) draws member i's masks from generators[i]."""
    global _members
    previous, _members = _members, PackForward(list(generators))
    try:
        yield
    finally:
        _members = previous


def members_noise(shape: torch.Size, p: float, dtype: torch.dtype, device: torch.device,
                  pack: PackForward) -> torch.Tensor:
    """Every member's dropout noise at one site, stacked: on the CPU each member's
    `dropout_noise` (its solo run's masks), elsewhere `counter_noise` for all at once."""
    if numpy_device(device):
        return torch.stack([dropout_noise(shape, p, dtype, g) for g in pack.generators])
    if pack.keys is None:  # one draw from each member's generator per forward
        keys = torch.tensor([int(torch.empty((), dtype=torch.int64).random_(generator=g))
                             for g in pack.generators])
        pack.keys = (keys.pin_memory() if device.type == "cuda" else keys).to(
            device, non_blocking=True)
    pack.site += 1
    return counter_noise(pack.keys, pack.site, shape, p, dtype)


WORD = 0xFFFFFFFF  # 32 bits, held in int64: products with the multipliers below stay < 2^63


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (xorshift-multiply rounds) of int64 values in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & WORD
    x = x ^ (x >> 15)
    x = (x * 0x5BD1E995) & WORD
    return x ^ (x >> 16)


def counter_noise(keys: torch.Tensor, site: int, shape: torch.Size, p: float,
                  dtype: torch.dtype) -> torch.Tensor:
    """m / (1 - p) for each member (one int64 key each, on the noise's device), with
    m_i = [h(key, site, i) < (1 - p) 2^32]: Bernoulli(1 - p) to within 2^-33 per element,
    a member's masks a function of its key alone."""
    n = math.prod(shape)
    keys = keys.view(-1, 1)
    seed = mix32((keys & WORD) ^ (site & WORD))
    index = torch.arange(n, device=keys.device, dtype=torch.int64).view(1, -1)
    bits = mix32(mix32(index ^ seed) ^ ((keys >> 32) & WORD))
    keep = bits < round((1 - p) * 2**32)
    return keep.to(dtype).mul_(inverse_keep(p, dtype)).view(len(keys), *shape)


class _MemberNoise(torch.autograd.Function):
    """Dropout noise for every member of a pack at once: vmap hands `vmap` below the
    stacked input, whose member dimension it fills member by member. (No gradient: the
    input only gives the shape.)"""

    generate_vmap_rule = False

    @staticmethod
    def forward(x: torch.Tensor, p: float) -> torch.Tensor:
        raise RuntimeError("member dropout noise is drawn under vmap only (a pack's forward)")

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def vmap(info, in_dims, x: torch.Tensor, p: float):
        x = x.movedim(in_dims[0], 0)
        if _members is None or len(_members.generators) != x.shape[0]:
            raise RuntimeError("a pack's forward needs one generator per member")
        return members_noise(x.shape[1:], p, x.dtype, x.device, _members), 0


def packed_masks(p: float, training: bool) -> bool:
    """Whether dropout draws per-member masks: in training, 0 < p < 1, a pack training."""
    return _members is not None and training and 0 < p < 1


def dropout(x: torch.Tensor, p: float, training: bool, inplace: bool = False) -> torch.Tensor:
    """`F.dropout(x, p, training, inplace)` with its masks drawn by NumPy on the CPU (and
    by each member's generator in a pack)."""
    if packed_masks(p, training):
        noise = _MemberNoise.apply(x.detach(), p)
    elif numpy_masks(x, p, training):
        noise = dropout_noise(x.shape, p, x.dtype)  # autograd keeps it: the gradient dy * noise
    else:
        return F.dropout(x, p, training, inplace)
    return x.mul_(noise) if inplace else x * noise


class Dropout(nn.Dropout):
    """`nn.Dropout` with `dropout`'s fast CPU masks (the same state dict: none)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, self.inplace)


def attention_weights(q: torch.Tensor, k: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) as SDPA's math path computes it: q and k each scaled by
    the square root of 1/sqrt(d), then the product (future positions masked when
    `causal`) and the softmax."""
    root_scale = math.sqrt(1.0 / math.sqrt(q.shape[-1]))
    scores = (q * root_scale) @ (k.transpose(-2, -1) * root_scale)
    if causal:
        t, s = scores.shape[-2:]
        future = torch.ones(t, s, dtype=torch.bool, device=q.device).tril().logical_not()
        scores = scores.masked_fill(future, -math.inf)
    return torch.softmax(scores, dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float,
              training: bool, causal: bool = False) -> torch.Tensor:
    """SDPA with dropout p on the attention weights (each position attending only to
    itself and earlier ones when `causal`). With dropout on the CPU, torch's SDPA takes
    its math path (its flash kernel has no dropout); this is that path, step for step,
    with `dropout`'s masks."""
    if numpy_masks(q, p, training) or packed_masks(p, training):
        return dropout(attention_weights(q, k, causal), p, True) @ v
    if q.device.type == "cpu" and (q.dtype == torch.bfloat16 or _members is not None):
        # torch's fused CPU kernel is 3-4x slower in bf16 than in float32 (measured with
        # the Transformer preset's shapes), and under a pack's vmap it has no batching
        # rule (torch would loop over the members, with a warning); its math path, two
        # matmuls, is faster in both
        return attention_weights(q, k, causal) @ v
    return F.scaled_dot_product_attention(q, k, v, dropout_p=p if training else 0.0,
                                          is_causal=causal)


def mask_source(model: nn.Module, device: torch.device, compiled: bool = False,
                packed: bool = False) -> str | None:
    """Where `model`'s dropout masks come from on `device`, for the run's meta.json: None
    without dropout, "numpy-pcg64" when every dropout layer is this module's on a CPU
    (and not compiled), else "torch"; in a pack (`packed`), each member's generator:
    "numpy-pcg64" on a CPU, "counter-hash-per-member" elsewhere."""
    layers = [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    if not layers:
        return None
    if packed:
        return "numpy-pcg64" if numpy_device(device) else "counter-hash-per-member"
    ours = device.type == "cpu" and not compiled and all(isinstance(m, Dropout) for m in layers)
    return "numpy-pcg64" if ours else "torch"
