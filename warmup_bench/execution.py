"""How a run is executed: everything that does not change what it computes on one device
(device, threads, kernels, diagnostics, ...). Each option is declared once here; the
`train` and `sweep` commands take their options from these declarations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError
from .trackers import check_available

DATA_DIR_HELP = "Data folder (default: $WARMUP_BENCH_DATA or ./data)."
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class Execution:
    """What a RunOptions field declares about itself."""

    help: str
    commands: tuple[str, ...] = ("train", "sweep")  # which commands take it as an option
    flag: str | None = None  # e.g. "--channels-last/--no-channels-last"; None: --field-name


def option(default, help: str, commands: tuple[str, ...] = ("train", "sweep"),
           flag: str | None = None):
    return field(default=default, metadata={"execution": Execution(help, commands, flag)})


@dataclass
class RunOptions:
    """How to execute a run (none of it changes what the run computes on one device)."""

    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", ("train",))
    data_dir: Path | None = option(None, DATA_DIR_HELP)
    resume: bool = option(False, "Continue an interrupted run from its checkpoint.",
                          ("train",))
    restart: bool = option(False, "Train the run again from scratch, even a complete one "
                           "(e.g. to add --save-model): what its folder held is replaced.",
                           ("train",))
    save_model: bool = option(False, "Keep the best epoch's weights in the run folder.")
    threads: int | None = option(None, "CPU threads per run (default: torch's, all cores; "
                                 "a sweep gives each run the cores divided by --jobs). CPU "
                                 "results are bit-reproducible per thread count.")
    channels_last: bool | None = option(None, "Conv nets' memory layout (default: "
                                        "channels_last on CUDA and CPU, where it is "
                                        "faster).", flag="--channels-last/--no-channels-last")
    fused_optimizer: bool | None = option(None, "The optimizer's fused step, where torch "
                                          "has one (default: on CPUs, where it is faster).",
                                          flag="--fused-optimizer/--no-fused-optimizer")
    deterministic: bool = option(False, "torch's deterministic algorithms (CUDA: bit-identical "
                                 "reruns and resumes, somewhat slower).",
                                 flag="--deterministic/--no-deterministic")
    tf32: bool | None = option(None, "CUDA: TF32 tensor cores for float32 matmuls and "
                               "convolutions (default: on; --no-tf32 for full float32).",
                               flag="--tf32/--no-tf32")
    compile_mode: str | None = option(None, "With --compile: torch.compile's mode, default, "
                                      "reduce-overhead (CUDA graphs: one launch replays a "
                                      "whole forward/backward) or max-autotune.")
    diagnostics: bool = option(True, "Log update sizes, Adam step ratios, angular updates "
                               "per log step (diagnostics.csv, layers.csv; default: on).",
                               flag="--diagnostics/--no-diagnostics")
    sharpness_every: int | None = option(None, "Estimate the top Hessian eigenvalue every N "
                                         "steps (a multiple of the log interval).")
    tensorboard: bool = option(False, "Also write the logged metrics as TensorBoard event "
                               "files in the run folder (sweep: default the grid's).",
                               flag="--tensorboard/--no-tensorboard")
    wandb: bool = option(False, "Also log to Weights & Biases, offline, into the run "
                         "folder's wandb/ (`wandb sync` uploads it).",
                         flag="--wandb/--no-wandb")
    mlflow: bool = option(False, "Also log to MLflow's local file store, mlruns/ in --out "
                          "(`mlflow ui --backend-store-uri file:OUT/mlruns`).",
                          flag="--mlflow/--no-mlflow")
    # not options: the user's own data (a data.custom.DataSource, from train's --data),
    # and what the caller wants to hear (notes, progress at log steps)
    data: object | None = None
    on_note: Callable[[str], None] | None = print
    on_progress: Callable | None = None  # (Progress) -> None, see train.loop
    on_hint: Callable[[str], None] | None = None  # speed hints, for a person at a terminal

    def check(self, log_intervals: set[int]) -> None:
        """ConfigError (one line) for options that cannot work for runs logging every
        one of `log_intervals` iterations, or whose optional package is missing."""
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads {self.threads} must be at least 1.")
        if self.compile_mode is not None and self.compile_mode not in COMPILE_MODES:
            raise ConfigError(f"--compile-mode {self.compile_mode!r} is not valid; choose "
                              f"from: {', '.join(COMPILE_MODES)}.")
        if self.resume and self.restart:
            raise ConfigError("--resume and --restart contradict each other: --resume "
                              "continues the run, --restart trains it again from scratch; "
                              "pass one.")
        for tracker in ("tensorboard", "wandb", "mlflow"):
            if getattr(self, tracker):
                check_available(tracker)
        every = self.sharpness_every
        if every is None:
            return
        if not self.diagnostics:
            raise ConfigError("--sharpness-every needs --diagnostics (its values go into "
                              "diagnostics.csv).")
        for interval in sorted(log_intervals):
            if every < 1 or every % interval:
                raise ConfigError(f"--sharpness-every {every} must be a positive multiple "
                                  f"of the log interval ({interval}).")

    @property
    def trackers(self) -> tuple[str, ...]:
        """The trackers beside TensorBoard this run logs to."""
        return tuple(name for name in ("wandb", "mlflow") if getattr(self, name))

    def note(self, text: str) -> None:
        if self.on_note is not None:
            self.on_note(text)


DECLARED = {f.name: f.metadata["execution"] for f in dataclasses.fields(RunOptions)
            if "execution" in f.metadata}
