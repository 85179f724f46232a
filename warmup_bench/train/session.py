"""One run while it trains, in its locked folder: restored or fresh, its config, meta and
summary written, its logs open; each epoch evaluated, recorded and checkpointed; ended
with its status. A run alone and every member of a pack go through these same steps."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass

import torch

from .. import __version__
from ..config import TrainConfig
from ..diagnostics import LogitProbe, Monitor, Sharpness, StepProbe
from ..execution import RunOptions
from ..jobs import slurm_ids
from ..models import mask_source
from ..optim import optimizer_kernel
from ..runs import PRECISE, RunDir, Status, Summary
from ..tasks import judged_by, long_warmup_note
from .build import Loaders, Net
from .checkpoint import RunState, checkpoint_state, own_storage, restore
from .device import cuda_math, device_name
from .evaluation import batchnorms, evaluate, evaluation_weights, recomputed_batchnorm


@dataclass
class RunResult:
    run: RunDir
    summary: Summary
    already_complete: bool = False  # found complete: nothing was trained

    @property
    def status(self) -> Status:
        return self.summary.status


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
        self.summary.judged_by = judged_by(cfg)
        if (note := long_warmup_note(cfg, iters * cfg.epochs)) is not None:
            options.note(note)  # said once the run is sure to start, after any refusal
        run.write_config(cfg)
        run.write_meta(run_meta(run, iters, net, self.state.epoch, options, packed)
                       | ({"text": loaders.text} if loaders.text is not None else {}))
        logits = LogitProbe.applies(net.model)  # a Transformer: its logits are probed too
        self.logs = run.open_logs(loaders.val is not None, options.diagnostics,
                                  options.tensorboard, first_step=self.state.epoch * iters + 1,
                                  iters_per_epoch=iters, logits=logits,
                                  trackers=options.trackers, config=cfg.to_dict(),
                                  precise_bn=cfg.precise_bn is not None)
        if cfg.precise_bn is not None and not batchnorms(net.model):
            options.note(f"note: --precise-bn {cfg.precise_bn} changes nothing for "
                         f"{cfg.model}, which has no BatchNorm: its *_pbn columns repeat "
                         "the evaluation's numbers.")
        self.monitor = Monitor(
            StepProbe(net.model, net.training.optimizer), self.sharpness,
            options.sharpness_every, cfg.log_interval, self.logs.diagnostics, self.logs.layers,
            LogitProbe(net.model, loaders.train.probe_batch()[0]) if logits else None,
            self.logs.logits) if options.diagnostics else None
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
            if self.cfg.precise_bn is not None:  # not in the epoch's seconds: a run's time
                row |= self.precise_evaluation(row)  # to a target is the protocol's
            self.logs.epochs.append(row)
            if self.state.record(row) and self.options.save_model:
                run.save_model(own_storage(net.model.state_dict()))
            self.summary.wall_seconds = self.recorded = \
                self.recorded + time.perf_counter() - self.clock
            self.clock = time.perf_counter()
            run.save_checkpoint(self.cfg, checkpoint_state(net, self.state, self.logs,
                                                           self.sharpness), keep_previous)
        run.write_summary(self.summary)

    def precise_evaluation(self, row: dict) -> dict:
        """The evaluations again at BatchNorm statistics recomputed over --precise-bn
        fixed training batches, as the *_pbn columns; training's statistics are put back.
        A model without BatchNorm: the same numbers (nothing to recompute)."""
        net, loaders, splits = self.net, self.loaders, ["test"]
        splits += ["val"] if loaders.val is not None else []
        names = [f"{split}_{kind}" for split in splits for kind in ("loss", "acc", "top5")]
        if not batchnorms(net.model):
            return {f"{name}{PRECISE}": row[name] for name in names}
        with recomputed_batchnorm(net, loaders.train, self.cfg.precise_bn):
            values = [v for split in splits for v in evaluate(net, getattr(loaders, split))]
        return {f"{name}{PRECISE}": value for name, value in zip(names, values)}

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
