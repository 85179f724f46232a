"""Training speed of the Transformer language-model preset (shakespeare-char: 4 layers,
width 128, context 64, batch 12) through warmup-bench, on the real corpus: milliseconds
per optimizer step and tokens per second, in float32 and with --amp (bf16 autocast where
the CPU has native bf16), eager and under --compile; evaluation excluded.

  python scripts/bench_lm.py                      # the 4 variants, 300 steps each
  python scripts/bench_lm.py --steps 500 --repeats 3
  python scripts/bench_lm.py --task shakespeare-char-gpu --device cuda

Each variant trains 2 evaluations of --steps steps: the first absorbs start-up (and
compilation), the second is timed. Variants alternate over --repeats rounds; the median
is printed. The anchor (docs/language-model.md): nanoGPT's own train.py with the same
configuration measured 39 ms per step on 2 CPU cores. Prints measurements only.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from warmup_bench.data import load_dataset
from warmup_bench.tasks import resolve_config
from warmup_bench.train import RunOptions, train

VARIANTS = {"float32": {}, "amp": {"amp": True}, "compile": {"compile": True},
            "amp + compile": {"amp": True, "compile": True}}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="shakespeare-char")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    cfg = resolve_config(args.task, {})
    data = load_dataset(cfg.dataset)
    names = args.variants.split(",")
    times: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            times[name].append(timed_step_ms(args.task, args.steps, VARIANTS[name],
                                             args.device, data))
    where = cpu_name() if args.device == "cpu" else torch.cuda.get_device_name()
    print(f"{args.task} ({cfg.model}, batch {cfg.batch_size} x context {cfg.context}), "
          f"{where}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d')}, median of {args.repeats}:")
    tokens = cfg.batch_size * cfg.context
    for name in names:
        ms = statistics.median(times[name])
        print(f"  {name:14s} {ms:6.1f} ms/step  {1000 * tokens / ms:9,.0f} tokens/s  "
              f"({', '.join(f'{t:.1f}' for t in times[name])})")


if __name__ == "__main__":
    main()
