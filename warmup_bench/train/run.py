"""One run's lifecycle: build everything from the config (before any file is written),
take the run folder's lock, restore a checkpoint or start fresh, then per epoch train,
evaluate, record, checkpoint; finish with the run's status (complete, diverged, failed,
interrupted) in its summary."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..config import TrainConfig
from ..data import Dataset, load_dataset
from ..diagnostics import Monitor, Sharpness, StepProbe
from ..errors import UserError
from ..execution import RunOptions
from ..models import mask_source
from ..optim import optimizer_kernel
from ..plugins import blame, describe_error, plugin_errors
from ..runs import RunDir, Status, Summary
from ..slurm.ids import slurm_ids
from ..tasks import long_warmup_note
from .build import Loaders, Net, build_net, check_model_fits, make_loaders
from .checkpoint import RunState, checkpoint_state, own_storage, restore
from .device import (
    busy_note,
    choose_kernels,
    cuda_math,
    device_name,
    resolve_device,
    slowdown_note,
    use_arithmetic,
)
from .loop import Diverged, StepFailed, evaluate, evaluation_weights, train_epoch


class RunExists(UserError):
    """The run directory holds an unfinished run and --resume was not given."""


class RunFailed(Exception):
    """The run ended `failed`; the message (one line, the summary's error) says why."""


@dataclass
class RunResult:
    run: RunDir
    summary: Summary
    already_complete: bool = False  # found complete: nothing was trained

    @property
    def status(self) -> Status:
        return self.summary.status


def train(cfg: TrainConfig, out: Path, options: RunOptions | None = None,
          data: Dataset | None = None) -> RunResult:
    """Runs `cfg` to its end, or resumes it, in its folder under `out`. `data` skips
    loading the data set (benchmarks hand in synthetic data of the same shape)."""
    options = options or RunOptions()
    options.check({cfg.log_interval})  # bad options are refused before anything is read
    device = resolve_device(options.device)
    run = RunDir.of(out, cfg)
    if (finished := already_complete(run, options)) is not None:
        return finished
    if options.threads:
        torch.set_num_threads(options.threads)
    use_arithmetic(device, options.deterministic, options.tf32)
    if options.on_hint and device.type == "cpu" and hasattr(os, "getloadavg"):
        note = busy_note(os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads())
        if note is not None:
            options.on_hint(note)

    # ---- build (before anything is written: a missing data set leaves no run folder)
    with plugin_errors("building the run"):
        own = options.data.spec if options.data is not None else None
        data = data if data is not None else load_dataset(cfg.dataset, options.data_dir, own)
        kernels = choose_kernels(cfg, device, options.channels_last, options.fused_optimizer,
                                 options.note, options.compile_mode)
        loaders = make_loaders(cfg, data, device, kernels.layout)
        net = build_net(cfg, data, device, len(loaders.train), kernels)
        check_model_fits(cfg, net.model, loaders.test, data.num_classes)

    # ---- one writer per run folder: a second process is refused here (RunBusy)
    lock = run.lock()
    try:
        if (finished := already_complete(run, options)) is not None:
            return finished  # finished by another process while this one was building
        run.check_files()
        return run_epochs(cfg, run, net, loaders, options)
    finally:
        lock.release()


def already_complete(run: RunDir, options: RunOptions) -> RunResult | None:
    """The result of a complete run (nothing to do); RunExists for an unfinished one
    without --resume (or --restart)."""
    if options.restart:
        return None
    previous = run.read_summary()
    if previous is not None and previous.status is Status.COMPLETE:
        return RunResult(run, previous, already_complete=True)
    if run.has_files() and not options.resume:
        status = previous.status.value if previous else "unknown"
        raise RunExists(f"{run.path} already holds a run (status {status}); pass --resume "
                        "to continue it, or --restart to start it over.")
    return None


class RunSession:
    """One run while it trains, in its folder (locked by the caller): restored from its
    checkpoint or started fresh, its logs open; then fed each epoch's training row
    (`end_epoch`: evaluate, record, checkpoint) and finished with its status. A run alone
    and every member of a pack (train.pack) go through these same steps."""

    def __init__(self, cfg: TrainConfig, run: RunDir, net: Net, loaders: Loaders,
                 options: RunOptions, packed: dict | None = None):
        self.cfg, self.run, self.net, self.loaders, self.options = cfg, run, net, loaders, options
        self.sharpness = Sharpness(net.model, net.criterion, *loaders.train.probe_batch(),
                                   cfg.seed) if options.sharpness_every else None
        if options.resume and not options.restart and run.has_checkpoint():
            self.state = restore(run, cfg, net, self.sharpness)  # CheckpointError: untouched
        else:
            run.start_fresh()
            self.state = RunState()
        self.summary, iters = self.state.summary, len(loaders.train)
        if (note := long_warmup_note(cfg, iters * cfg.epochs)) is not None:
            options.note(note)  # said once the run is sure to start, after any refusal
        run.write_config(cfg)
        run.write_meta(run_meta(run, iters, net, self.state.epoch, options, packed))
        self.logs = run.open_logs(loaders.val is not None, options.diagnostics,
                                  options.tensorboard, first_step=self.state.epoch * iters + 1,
                                  iters_per_epoch=iters)
        self.monitor = Monitor(StepProbe(net.model, net.training.optimizer), self.sharpness,
                               options.sharpness_every, cfg.log_interval, self.logs.diagnostics,
                               self.logs.layers) if options.diagnostics else None
        run.write_summary(self.summary)
        self.recorded, self.clock = self.summary.wall_seconds, time.perf_counter()

    def end_epoch(self, row: dict, epoch_started: float, keep_previous: bool = False) -> None:
        """Evaluates, appends the epoch's row, keeps the best model, checkpoints
        (`keep_previous`: the checkpoint before it stays until the pack has committed)."""
        net, loaders, run = self.net, self.loaders, self.run
        with evaluation_weights(net, loaders.train):  # schedule-free: the averaged x
            row["test_loss"], row["test_acc"], row["test_top5"] = evaluate(net, loaders.test)
            if loaders.val is not None:
                row["val_loss"], row["val_acc"], row["val_top5"] = evaluate(net, loaders.val)
            row["seconds"] = time.perf_counter() - epoch_started
            self.logs.epochs.append(row)
            if self.state.record(row) and self.options.save_model:
                run.save_model(own_storage(net.model.state_dict()))
            self.summary.wall_seconds = self.recorded = \
                self.recorded + time.perf_counter() - self.clock
            self.clock = time.perf_counter()
            run.save_checkpoint(self.cfg, checkpoint_state(net, self.state, self.logs,
                                                           self.sharpness), keep_previous)
        run.write_summary(self.summary)

    def finish(self, status: Status, error: str | None = None, **extra) -> RunResult:
        summary = self.summary
        summary.status, summary.error = status, error
        summary.wall_seconds = self.recorded + time.perf_counter() - self.clock
        for key, value in extra.items():
            setattr(summary, key, value)
        try:
            self.logs.close()
            self.run.write_summary(summary)
        except OSError:  # the disk that failed the run may refuse this too
            pass
        return RunResult(self.run, summary)


def run_epochs(cfg: TrainConfig, run: RunDir, net: Net, loaders: Loaders,
               options: RunOptions) -> RunResult:
    """Restore (or start fresh), then per epoch: train, evaluate, record, checkpoint."""
    session = RunSession(cfg, run, net, loaders, options)
    fastest, slowed = 0.0, False
    try:
        for epoch in range(session.state.epoch, cfg.epochs):
            epoch_started, cpu_started = time.perf_counter(), time.process_time()
            row = train_epoch(cfg, net, loaders.train, epoch, session.logs.steps,
                              session.monitor, options.on_progress)
            # the process's CPU time (all threads) over what its threads could have had
            cpu_share = (time.process_time() - cpu_started) / max(
                1e-9, (time.perf_counter() - epoch_started) * torch.get_num_threads())
            session.end_epoch(row, epoch_started)
            fastest = max(fastest, row["images_per_second"])
            if options.on_hint and not slowed and (note := slowdown_note(
                    row["epoch"], row["images_per_second"], fastest, torch.get_num_threads(),
                    cpu_share, net.device)):
                slowed = True  # said once
                options.on_hint(note)
    except Diverged as diverged:
        return session.finish(Status.DIVERGED, str(diverged), diverged_at=diverged.at)
    except KeyboardInterrupt:
        session.finish(Status.INTERRUPTED, INTERRUPTED)
        raise
    except (Exception, SystemExit) as error:  # plugin code may raise anything, even exit
        reason = failure_reason(error)
        session.finish(Status.FAILED, reason)
        raise RunFailed(reason) from error
    except BaseException as error:
        session.finish(Status.FAILED, describe_error(error))
        raise
    return session.finish(Status.COMPLETE)


INTERRUPTED = "interrupted by the user; --resume continues from the last completed epoch"


def failure_reason(error: BaseException) -> str:
    """One line for the summary and the terminal: which plugin raised what, and where."""
    where = None
    if isinstance(error, StepFailed) and error.__cause__ is not None:
        where, error = error.where, error.__cause__
    culprit = blame(error)
    verb = "called" if isinstance(error, SystemExit) else "raised"
    return (f"{culprit} {verb} " if culprit else "") + describe_error(error) + \
        (f" at {where}" if where else "")


def run_meta(run: RunDir, iters_per_epoch: int, net: Net, resumed_at: int,
             options: RunOptions, packed: dict | None = None) -> dict:
    """meta.json: how the run was executed. `packed` (a member of a pack: its size and
    its members' run names) is added only then, so a run alone's meta.json is as it
    always was."""
    device = net.device
    packing = {"packed": packed} if packed is not None else {}
    return {
        "run_name": run.name,
        "versions": {"warmup_bench": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": str(device),
        "device_name": device_name(device),
        # CPU kernels reduce in a thread-count-dependent order: results are bit-reproducible
        # for the same device, torch build and thread count
        "threads": torch.get_num_threads(),
        "memory_format": "channels_last" if net.kernels.layout == torch.channels_last
        else "contiguous",
        "optimizer_kernel": optimizer_kernel(net.training.optimizer),
        # net.forward is the compiled model under --compile, whose graph draws its masks
        "dropout_masks": mask_source(net.model, device, compiled=net.forward is not net.model,
                                     packed=packed is not None),
        "autocast": "bf16" if net.kernels.bf16 else None,
        "compile_mode": net.kernels.compile_mode,  # None: not compiled
        **cuda_math(device, options.tf32, options.deterministic),  # TF32, cuDNN benchmark
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed_at_epoch": resumed_at or None,
        "delay_schedule_iterations": net.training.lr_schedule.scheduler_delay,
        "iterations_per_epoch": iters_per_epoch,
        "diagnostics": options.diagnostics,
        "sharpness_every": options.sharpness_every,
        "deterministic": options.deterministic,
        # where the user's own data was read (predict and export read it there again)
        "data_source": options.data.location if options.data is not None else None,
        "slurm": slurm_ids(),  # the Slurm job and array task that ran it, or null
    } | packing
