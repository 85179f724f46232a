"""What --precise-bn costs and what it buys, from finished runs: for each run folder given
(image runs with BatchNorm, trained with a checkpoint at their last epoch), the test
accuracy at the stored running statistics and at statistics recomputed over N fixed
training batches for each N, the seconds each recomputation-plus-evaluation takes, and
its share of the run's epoch; then, per N, the mean and standard deviation over the runs
(the seeds). Prints measurements only.

  python scripts/bench_precise_bn.py RESULTS/cifar10-resnet20/*  --data npz:fm32.npz
  python scripts/bench_precise_bn.py RUN... --batches 10,50,200
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from warmup_bench.data import load_dataset
from warmup_bench.data.custom import open_data_source
from warmup_bench.runs import RunDir
from warmup_bench.train.build import build_net, make_loaders
from warmup_bench.train.device import choose_kernels
from warmup_bench.train.evaluation import evaluate, recomputed_batchnorm


def measure(run: RunDir, data, counts: list[int]) -> dict:
    """Test accuracy (%) at the stored statistics and per N recomputed, and the seconds
    of each recomputation plus evaluation."""
    cfg = run.read_config()
    device = torch.device("cpu")
    kernels = choose_kernels(cfg, device)
    loaders = make_loaders(cfg, data, device, kernels.layout)
    net = build_net(cfg, data, device, len(loaders.train), kernels)
    state = torch.load(run.path / "checkpoint.pt", map_location="cpu", weights_only=False)
    net.model.load_state_dict(state["model"])
    started = time.perf_counter()
    stored = 100 * evaluate(net, loaders.test)[1]
    evaluation = time.perf_counter() - started
    result = {"stored": stored, "evaluation": evaluation, "epoch": float(
        run.read_epochs()["seconds"].iloc[-1])}
    for count in counts:
        started = time.perf_counter()
        with recomputed_batchnorm(net, loaders.train, count):
            result[count] = 100 * evaluate(net, loaders.test)[1]
        result[f"{count} seconds"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", help="the runs' own data source (npz:FILE, ...)")
    parser.add_argument("--batches", default="10,50,200")
    args = parser.parse_args()
    counts = [int(n) for n in args.batches.split(",")]
    runs = [RunDir(p) for p in args.runs]
    cfg = runs[0].read_config()
    source = open_data_source(args.data) if args.data else None
    data = load_dataset(cfg.dataset, None, source.spec if source else None)
    results = []
    for run in runs:
        results.append(measure(run, data, counts))
        shown = ", ".join(f"N={n}: {results[-1][n]:.2f}%" for n in counts)
        print(f"{run.path.name}: stored {results[-1]['stored']:.2f}%, {shown}", flush=True)
    print(f"\n{len(results)} runs, {torch.get_num_threads()} threads, "
          f"{time.strftime('%Y-%m-%d')}; test accuracy (%) mean ± sd over the runs:")
    epoch = statistics.fmean(r["epoch"] for r in results)
    evaluation = statistics.fmean(r["evaluation"] for r in results)
    print(f"  stored statistics   {statistics.fmean(r['stored'] for r in results):6.2f} ± "
          f"{statistics.stdev(r['stored'] for r in results):5.2f}   evaluation "
          f"{evaluation:.1f} s ({100 * evaluation / epoch:.1f}% of a {epoch:.0f} s epoch)")
    for n in counts:
        seconds = statistics.fmean(r[f"{n} seconds"] for r in results)
        print(f"  recomputed, N={n:<4d} {statistics.fmean(r[n] for r in results):6.2f} ± "
              f"{statistics.stdev(r[n] for r in results):5.2f}   recompute + evaluation "
              f"{seconds:.1f} s ({100 * seconds / epoch:.1f}% of the epoch)")


if __name__ == "__main__":
    main()
