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
from ..slurm.task import slurm_ids
from ..tasks import long_warmup_note
from .build import Loaders, Net, build_net, check_model_fits, make_loaders
from .checkpoint import RunState, checkpoint_state, restore
from .device import (
    busy_note,
    choose_kernels,
    device_name,
    resolve_device,
    slowdown_note,
    use_deterministic,
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
    if (finished := _already_complete(run, options)) is not None:
        return finished
    if options.threads:
        torch.set_num_threads(options.threads)
    use_deterministic(options.deterministic)
    if options.on_hint and device.type == "cpu" and hasattr(os, "getloadavg"):
        note = busy_note(os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads())
        if note is not None:
            options.on_hint(note)

    # ---- build (before anything is written: a missing data set leaves no run folder)
    with plugin_errors("building the run"):
        own = options.data.spec if options.data is not None else None
        data = data if data is not None else load_dataset(cfg.dataset, options.data_dir, own)
        kernels = choose_kernels(cfg, device, options.channels_last, options.fused_optimizer,
                                 options.note)
        loaders = make_loaders(cfg, data, device, kernels.layout)
        net = build_net(cfg, data, device, len(loaders.train), kernels)
        check_model_fits(cfg, net.model, loaders.test, data.num_classes)

    # ---- one writer per run folder: a second process is refused here (RunBusy)
    lock = run.lock()
    try:
        if (finished := _already_complete(run, options)) is not None:
            return finished  # finished by another process while this one was building
        run.check_files()
        return run_epochs(cfg, run, net, loaders, options)
    finally:
        lock.release()


def _already_complete(run: RunDir, options: RunOptions) -> RunResult | None:
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


def run_epochs(cfg: TrainConfig, run: RunDir, net: Net, loaders: Loaders,
               options: RunOptions) -> RunResult:
    """Restore (or start fresh), then per epoch: train, evaluate, record, checkpoint."""
    sharpness = Sharpness(net.model, net.criterion, *loaders.train.probe_batch(), cfg.seed) \
        if options.sharpness_every else None
    if options.resume and not options.restart and run.has_checkpoint():
        state = restore(run, cfg, net, sharpness)  # CheckpointError leaves the folder as is
    else:
        run.start_fresh()
        state = RunState()
    summary, iters = state.summary, len(loaders.train)
    if (note := long_warmup_note(cfg, iters * cfg.epochs)) is not None:
        options.note(note)  # said once the run is sure to start, after any refusal
    run.write_config(cfg)
    run.write_meta(run_meta(run, iters, net, state.epoch, options))
    logs = run.open_logs(loaders.val is not None, options.diagnostics, options.tensorboard,
                         first_step=state.epoch * iters + 1, iters_per_epoch=iters)
    monitor = Monitor(StepProbe(net.model, net.training.optimizer), sharpness,
                      options.sharpness_every, cfg.log_interval, logs.diagnostics,
                      logs.layers) if options.diagnostics else None
    run.write_summary(summary)
    recorded, clock = summary.wall_seconds, time.perf_counter()

    def finish(status: Status, error: str | None = None, **extra) -> RunResult:
        summary.status, summary.error = status, error
        summary.wall_seconds = recorded + time.perf_counter() - clock
        for key, value in extra.items():
            setattr(summary, key, value)
        try:
            logs.close()
            run.write_summary(summary)
        except OSError:  # the disk that failed the run may refuse this too
            pass
        return RunResult(run, summary)

    fastest, slowed = 0.0, False
    try:
        for epoch in range(state.epoch, cfg.epochs):
            epoch_started, cpu_started = time.perf_counter(), time.process_time()
            row = train_epoch(cfg, net, loaders.train, epoch, logs.steps, monitor,
                              options.on_progress)
            # the process's CPU time (all threads) over what its threads could have had
            cpu_share = (time.process_time() - cpu_started) / max(
                1e-9, (time.perf_counter() - epoch_started) * torch.get_num_threads())
            with evaluation_weights(net, loaders.train):  # schedule-free: the averaged x
                row["test_loss"], row["test_acc"], row["test_top5"] = evaluate(net,
                                                                               loaders.test)
                if loaders.val is not None:
                    row["val_loss"], row["val_acc"], row["val_top5"] = evaluate(net,
                                                                                loaders.val)
                row["seconds"] = time.perf_counter() - epoch_started
                logs.epochs.append(row)
                if state.record(row) and options.save_model:
                    run.save_model(net.model.state_dict())
                summary.wall_seconds = recorded = recorded + time.perf_counter() - clock
                clock = time.perf_counter()
                run.save_checkpoint(cfg, checkpoint_state(net, state, logs, sharpness))
            run.write_summary(summary)
            fastest = max(fastest, row["images_per_second"])
            if options.on_hint and not slowed and (note := slowdown_note(
                    row["epoch"], row["images_per_second"], fastest, torch.get_num_threads(),
                    cpu_share)):
                slowed = True  # said once
                options.on_hint(note)
    except Diverged as diverged:
        return finish(Status.DIVERGED, str(diverged), diverged_at=diverged.at)
    except KeyboardInterrupt:
        finish(Status.INTERRUPTED, "interrupted by the user; --resume continues from the "
               "last completed epoch")
        raise
    except (Exception, SystemExit) as error:  # plugin code may raise anything, even exit
        reason = failure_reason(error)
        finish(Status.FAILED, reason)
        raise RunFailed(reason) from error
    except BaseException as error:
        finish(Status.FAILED, describe_error(error))
        raise
    return finish(Status.COMPLETE)


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
             options: RunOptions) -> dict:
    device = net.device
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
        "dropout_masks": mask_source(net.model, device, compiled=net.forward is not net.model),
        "autocast": "bf16" if net.kernels.bf16 else None,
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
    }
