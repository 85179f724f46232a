"""Which runs of a grid a sweep packs together (`sweep --pack`, train.pack), and the
jobs that train them: a PackJob per pack, a Job for a run alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import ConfigError, TrainConfig
from .execution import RunOptions
from .sweep import Job, PackJob, make_jobs
from .train import auto_pack_size, pack_key, resolve_device

PACK_CHOICES = "off, auto or a pack size (a whole number of runs, at least 1)"


def parse_pack(value: str, name: str = "--pack") -> int | str:
    """--pack's value: "auto", or a pack size (off is 1: one run per process)."""
    value = value.strip().lower()
    if value in ("off", "auto"):
        return 1 if value == "off" else "auto"
    if value.isascii() and value.isdigit() and int(value) >= 1:  # not "²" or "٣"
        return int(value)
    raise ConfigError(f"{name} {value!r} is not {PACK_CHOICES}.")


PackSize = int | Callable[[list[TrainConfig]], int]  # a size, or one per set of packable runs


def pack_groups(configs: list[TrainConfig], size: PackSize) -> list[list[TrainConfig]]:
    """The grid's packs: runs with one pack key (train.pack), in grid order, `size` at a
    time. Formed over the whole grid, finished runs included, so a rerun of the sweep
    packs what is left as the first sweep packed it."""
    by_key: dict[tuple, list[TrainConfig]] = {}
    for cfg in configs:
        by_key.setdefault(pack_key(cfg), []).append(cfg)
    groups = []
    for runs in by_key.values():
        n = size if isinstance(size, int) else size(runs)
        groups += [runs[i:i + n] for i in range(0, len(runs), n)]
    return groups


def plan_jobs(configs: list[TrainConfig], todo: list[TrainConfig], out: Path,
              options: RunOptions, devices: list[str], plugins: tuple[Path, ...],
              pack: int | str, on_note: Callable[[str], None]) -> list[Job | PackJob]:
    """The sweep's jobs: one per run, or (`pack` a size or "auto") one per pack."""
    if pack == 1:
        return make_jobs(todo, out, options, devices, plugins)
    size: PackSize = pack if isinstance(pack, int) else 1
    if pack == "auto":

        device = resolve_device(devices[0])

        def size(runs: list[TrainConfig]) -> int:
            n, why = auto_pack_size(runs[0], device, len(runs))
            on_note(f"--pack auto: packs of {n} for {runs[0].model} ({why}).")
            return n
    return make_pack_jobs(configs, todo, size, out, options, devices, plugins)


def make_pack_jobs(configs: list[TrainConfig], todo: list[TrainConfig], size: PackSize,
                   out: Path, options: RunOptions, devices: list[str],
                   plugins: tuple[Path, ...] = ()) -> list[Job | PackJob]:
    """The unfinished runs of each pack as one PackJob (a pack left with one run: a Job),
    the devices taken in turn."""
    waiting = set(todo)
    groups = [[cfg for cfg in group if cfg in waiting] for group in pack_groups(configs, size)]
    groups = [group for group in groups if group]
    jobs: list[Job | PackJob] = []
    for i, group in enumerate(groups):
        [job] = make_jobs(group[:1], out, options, [devices[i % len(devices)]], plugins)
        jobs.append(job if len(group) == 1 else
                    PackJob(tuple(group), job.out, job.options, job.plugins))
    return jobs


def describe_packs(configs: list[TrainConfig], todo: list[TrainConfig], pack: int | str
                   ) -> str:
    """One line for --dry-run: how the runs still to train would be packed."""
    if pack == "auto":
        return ("--pack auto: pack sizes are decided when the sweep starts (a timed probe "
                "on a GPU; on a CPU one run per process).")
    waiting = set(todo)
    sizes = [n for n in (sum(cfg in waiting for cfg in group)
                         for group in pack_groups(configs, pack)) if n]
    together = sum(n for n in sizes if n > 1)
    return (f"--pack {pack}: {len(todo)} runs to train in {len(sizes)} processes "
            f"({sum(n > 1 for n in sizes)} pack(s) of up to {pack} holding {together} runs, "
            f"{len(sizes) - sum(n > 1 for n in sizes)} run(s) alone).")
