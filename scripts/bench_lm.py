"""Training speed of nanoGPT's CPU configuration (the shakespeare-char preset: 4 layers,
width 128, context 64, batch 12; with nanoGPT's bias-free blocks, its weight decay on
matrices alone and its 100-step warmup) through warmup-bench, on the real corpus:
milliseconds per optimizer step and tokens per second, in float32 and with --amp (bf16
autocast where the CPU has native bf16), eager and under --compile; evaluation excluded.

  python scripts/bench_lm.py                      # the 4 variants, 300 steps each
  python scripts/bench_lm.py --steps 500 --repeats 3
  python scripts/bench_lm.py --preset             # the preset as it is (with biases)
  python scripts/bench_lm.py --task shakespeare-char-gpu --device cuda --preset

Each variant trains 2 evaluations of --steps steps: the first absorbs start-up (and
compilation), the second is timed. Variants alternate over --repeats rounds; the median
is printed. The anchor (docs/language-model.md): nanoGPT's own train.py with the same
configuration measured 39 ms per step on 2 CPU cores. nanoGPT cannot be installed here, so
the variant "plain loop" stands in for it side by side: the same model trained the way
its train.py trains on a CPU (float32, eager, random windows drawn every step, AdamW's
multi-tensor step, clipping, the LR set every step, the loss read every step as its CPU
preset's --log_interval=1 does). Prints measurements only.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from warmup_bench.data import load_dataset
from warmup_bench.models import build_model
from warmup_bench.optim import decay_groups
from warmup_bench.tasks import resolve_config
from warmup_bench.train import RunOptions, train

# what nanoGPT's train.py does that the preset does not (docs/language-model.md)
NANOGPT = {"bias": False, "weight_decay_on": "matrices", "warmup": "linear",
           "warmup_period": 100, "delay_schedule": True}
VARIANTS = {"plain loop": None, "float32": {}, "amp": {"amp": True},
            "compile": {"compile": True}, "amp + compile": {"amp": True, "compile": True}}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timed_step_ms(task: str, steps: int, settings: dict, device: str, data) -> float:
    """Milliseconds per step of the second evaluation interval (training only)."""
    cfg = resolve_config(task, {"epochs": 2, "epoch_steps": steps, **settings})
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, Path(out), RunOptions(device=device, on_note=None,
                                                  diagnostics=False), data=data)
        epochs = result.run.read_epochs()
    windows_per_second = float(epochs["images_per_second"].iloc[1])
    return 1000.0 * cfg.batch_size / windows_per_second


def plain_loop_step_ms(task: str, steps: int, settings: dict, data) -> float:
    """Milliseconds per step of a plain PyTorch loop over the same model and optimizer
    settings, in float32 (after steps // 10 untimed ones)."""
    cfg = resolve_config(task, settings)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, 1, cfg)
    optimizer = torch.optim.AdamW(decay_groups(model, cfg.weight_decay_on), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
    stream = data.train.long()
    offsets = torch.arange(cfg.context + 1)
    total = cfg.epochs * cfg.epoch_steps

    def step(it: int) -> float:
        progress = min(1.0, it / total)
        for group in optimizer.param_groups:
            group["lr"] = cfg.eta_min + 0.5 * (cfg.lr - cfg.eta_min) * (
                1 + math.cos(math.pi * progress)) * min(1.0, (it + 1) / 100)
        windows = stream[torch.randint(len(stream) - cfg.context - 1,
                                       (cfg.batch_size, 1)) + offsets]
        logits = model(windows[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    for it in range(steps // 10):
        step(it)
    started = time.perf_counter()
    for it in range(steps // 10, steps // 10 + steps):
        step(it)
    return 1000.0 * (time.perf_counter() - started) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="shakespeare-char")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--preset", action="store_true",
                        help="time the task preset as it is, not nanoGPT's configuration")
    args = parser.parse_args()
    base = {} if args.preset else NANOGPT
    cfg = resolve_config(args.task, {})
    data = load_dataset(cfg.dataset)
    # the plain loop stands in for nanoGPT on a CPU only
    names = args.variants.split(",") if args.variants else \
        [name for name in VARIANTS if args.device == "cpu" or VARIANTS[name] is not None]
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            if VARIANTS[name] is None:
                times[name].append(plain_loop_step_ms(args.task, args.steps, base, data))
            else:
                times[name].append(timed_step_ms(args.task, args.steps,
                                                 base | VARIANTS[name], args.device, data))
    where = cpu_name() if args.device == "cpu" else torch.cuda.get_device_name()
    what = "preset" if args.preset else "nanoGPT's configuration"
    print(f"{args.task} {what} ({cfg.model}, batch {cfg.batch_size} x context "
          f"{cfg.context}), "
          f"{where}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}, median of {args.repeats}:")
    tokens = cfg.batch_size * cfg.context
    plain = statistics.median(times["plain loop"]) if "plain loop" in times else None
    for name in names:
        ms = statistics.median(times[name])
        # each round's plain loop against the same round's variant: the machine's speed
        # drifts between rounds
        ratios = [p / t for p, t in zip(times["plain loop"], times[name])] if plain else []
        faster = f"  {statistics.median(ratios):.2f}x the plain loop's speed" if ratios else ""
        print(f"  {name:14s} {ms:6.1f} ms/step  {1000 * tokens / ms:9,.0f} tokens/s  "
              f"({', '.join(f'{t:.1f}' for t in times[name])}){faster}")


if __name__ == "__main__":
    main()
