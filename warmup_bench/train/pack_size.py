"""How many runs to pack (`sweep --pack auto`), decided by a short timed probe on the
device itself: training steps of packs of 1, 2, 4, ... on synthetic data of the task's
shape, keeping the size with the most images/s that still fits the device's memory.

On a CPU, `auto` does not probe: packing was measured slower there on every workload
(docs/packing.md: vmap's grouped convolutions and batched matmuls lose to the fused
channels_last kernels a run alone uses), so `auto` means one run per process.
"""

from __future__ import annotations

import time

import torch

from ..config import TrainConfig
from ..data import DATASETS, is_text
from ..models import build_model
from ..models.dropout import member_generators
from ..optim import build_training
from .build import token_cross_entropy
from .device import memory_format
from .pack import PackedModel, is_out_of_memory

PROBE_STEPS = 5  # timed steps per size, after 2 untimed ones
GAIN = 1.1  # a larger pack must be this much faster to be worth it
MEMORY_SHARE = 0.8  # of the device's free memory a pack may take


def auto_pack_size(cfg: TrainConfig, device: torch.device, most: int) -> tuple[int, str]:
    """(the pack size for runs like `cfg`, one line saying why)."""
    if device.type == "cpu" or most <= 1:
        return 1, "a CPU: packing was measured slower there (docs/packing.md)"
    speeds = probe(cfg, device, most)
    best = max(speeds, key=speeds.get)
    said = ", ".join(f"{size}: {speed:,.0f}" for size, speed in speeds.items())
    return best, f"probe on {device} (pack size: images/s) {said}"


def probe(cfg: TrainConfig, device: torch.device, most: int,
          steps: int = PROBE_STEPS) -> dict[int, float]:
    """Images/s of packs of 1, 2, 4, ... (up to `most`), stopping at the first that runs
    out of memory, takes more than MEMORY_SHARE of what was free, or gains less than GAIN
    over the size before it."""
    spec = DATASETS[cfg.dataset]
    free = _free_memory(device)
    speeds: dict[int, float] = {}
    size = 1
    while size <= most:
        try:
            speed, peak = _timed(cfg, spec, device, size, steps)
        except (RuntimeError, torch.OutOfMemoryError) as error:
            if not is_out_of_memory(error):
                raise
            break
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if free is not None and peak > MEMORY_SHARE * free:
            break
        previous = speeds.get(size // 2)
        speeds[size] = speed
        if previous is not None and speed < GAIN * previous:
            break
        size *= 2
    return speeds or {1: 0.0}


def _free_memory(device: torch.device) -> int | None:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    return None


def _timed(cfg: TrainConfig, spec, device: torch.device, size: int, steps: int
           ) -> tuple[float, int]:
    """(images/s, peak device memory in bytes) of `steps` training steps of a pack of
    `size` (1: the model alone, as a run alone trains it)."""
    models = [build_model(cfg.model, spec.num_classes, spec.shape[0], cfg).to(device)
              for _ in range(size)]
    if is_text(spec):  # windows of token indices, each position's next token its label
        x = torch.randint(0, spec.num_classes, (size, cfg.batch_size, cfg.context),
                          device=device)
        y = torch.randint(0, spec.num_classes, x.shape, device=device)
    else:
        x = torch.randn(size, cfg.batch_size, *spec.shape, device=device)
        y = torch.randint(0, spec.num_classes, (size, cfg.batch_size), device=device)
    if size == 1:
        model = models[0].to(memory_format=memory_format(cfg, device))
        optimizers = [build_training(model, cfg, 1).optimizer]
        single = x[0].contiguous(memory_format=memory_format(cfg, device))

        def step() -> None:
            optimizers[0].zero_grad(set_to_none=True)
            token_cross_entropy(model(single), y[0]).backward()
            optimizers[0].step()
    else:
        optimizers = [build_training(m, cfg, 1).optimizer for m in models]
        packed = PackedModel(models)
        packed.train()
        # dropout under vmap draws each member's masks from its own generator, as in
        # training (without them, torch's random ops refuse to run under vmap)
        generators = [torch.Generator().manual_seed(k) for k in range(size)]

        def step() -> None:
            with member_generators(generators):
                logits = packed(x)
            packed.zero_grad()
            token_cross_entropy(logits, y).backward()
            packed.hand_out_gradients()
            for optimizer in optimizers:
                optimizer.step()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(2):
        step()
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)  # host sync: the timed steps are done
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else 0
    return size * cfg.batch_size * steps / seconds, peak


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()
