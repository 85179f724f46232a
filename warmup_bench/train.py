"""The training loop and the run lifecycle: fresh start, resume, divergence, outputs.

`train()` reads top to bottom: build everything from the config, restore a checkpoint
when resuming, then per epoch train (`train_epoch`), evaluate, record, checkpoint, and
finish with the run's final status. The host syncs with the device only at log intervals
and at epoch ends; every such sync is commented.
"""

from __future__ import annotations

import math
import platform
import re
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .config import ConfigError, TrainConfig
from .data import AUGMENTATIONS, BatchLoader, Dataset, load_dataset, split_train_val
from .diagnostics import Monitor, Sharpness, StepProbe
from .models import CONV_NETS, build_model, mask_source
from .optim import Training, build_training, optimizer_kernel
from .plugins import blame, describe_error, plugin_errors
from .runs import CheckpointError, CsvLog, Logs, RunDir, Status, Summary
from .trackers import check_available as check_tensorboard


class RunExists(Exception):
    """The run directory holds an unfinished run and --resume was not given."""


class RunFailed(Exception):
    """The run ended `failed`; the message (one line, the summary's error) says why."""


class StepFailed(Exception):
    """An error raised during a training step (its cause), and where: "step 37 (epoch 1)"."""

    def __init__(self, where: str):
        super().__init__(where)
        self.where = where


def failure_reason(error: BaseException) -> str:
    """One line for the summary and the terminal: which plugin raised what, and where."""
    where = None
    if isinstance(error, StepFailed) and error.__cause__ is not None:
        where, error = error.where, error.__cause__
    culprit = blame(error)
    verb = "called" if isinstance(error, SystemExit) else "raised"
    return (f"{culprit} {verb} " if culprit else "") + describe_error(error) + \
        (f" at {where}" if where else "")


class Diverged(Exception):
    """The training loss stopped being finite."""

    def __init__(self, message: str, epoch: int, step: int):
        super().__init__(message)
        self.at = {"epoch": epoch, "step": step}


@dataclass
class RunOptions:
    """How to execute a run (none of it changes what the run computes on one device)."""

    device: str = "auto"
    data_dir: Path | None = None
    resume: bool = False
    save_model: bool = False
    show_progress: bool = False
    threads: int | None = None  # intra-op CPU threads; None keeps torch's default
    channels_last: bool | None = None  # conv nets' memory layout; None: the device's best
    fused_optimizer: bool | None = None  # the fused optimizer step; None: on CPUs
    diagnostics: bool = True  # per-step diagnostics.csv and layers.csv (read-only probes)
    sharpness_every: int | None = None  # top Hessian eigenvalue every N steps
    tensorboard: bool = False  # also write the logged rows as TensorBoard events
    on_note: Callable[[str], None] = print


@dataclass
class RunResult:
    run: RunDir
    summary: Summary
    already_complete: bool = False  # found complete: nothing was trained

    @property
    def status(self) -> Status:
        return self.summary.status


DEVICE_FORMS = "auto, cpu, cuda, cuda:N (an installed GPU's index) or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device a --device string names; ConfigError for anything else (torch
    itself accepts many strings, like 'meta' or 'xpu', that cannot train here)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d{1,4}))?", name)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ConfigError(f"--device {name!r} is not a device; use {DEVICE_FORMS}.")
    kind, index = match[1], match[2]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine.")
    if kind == "cuda" and index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s).")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine.")
    return torch.device(name)


# ---- building -----------------------------------------------------------------------


@dataclass
class Loaders:
    train: BatchLoader
    test: BatchLoader
    val: BatchLoader | None


@dataclass(frozen=True)
class Kernels:
    """How a run's arithmetic is executed on its device. Every choice computes the same
    function; results differ between choices in the last bits, as between thread counts
    (an equivalence test trains the same curve on real data both ways)."""

    layout: torch.memory_format = torch.contiguous_format  # activations and weights
    fused_optimizer: bool = False  # the optimizer's single-kernel step, where it has one


def choose_kernels(cfg: TrainConfig, device: torch.device, options: RunOptions) -> Kernels:
    return Kernels(memory_format(cfg, device, options.channels_last),
                   fused_optimizer(device, options.fused_optimizer))


def memory_format(cfg: TrainConfig, device: torch.device,
                  channels_last: bool | None = None) -> torch.memory_format:
    """The layout of a run's activations and weights. Conv nets run channels_last on CUDA
    and on CPUs (one fwd/bwd/step of ResNet-20 1.29x, the EMNIST CNN 1.6x, the digits net
    1.4x faster on an AMD EPYC than contiguous: oneDNN's NHWC kernels); the ViT and MPS
    keep the contiguous layout. `channels_last` forces either."""
    if channels_last is None:
        channels_last = cfg.model in CONV_NETS and device.type in ("cuda", "cpu")
    return torch.channels_last if channels_last else torch.contiguous_format


def fused_optimizer(device: torch.device, fused: bool | None = None) -> bool:
    """Whether to take the optimizer's fused step (SGD, Adam, AdamW, AMSGradW). On CPUs by
    default: one vectorised pass over the parameters instead of one per operation, so the
    EMNIST CNN's AdamW step costs 0.7 ms instead of 1.5 ms inside the loop and the ViT's
    1.8 ms instead of 7.2 ms. On CUDA the multi-tensor step stays, as in torch."""
    return device.type == "cpu" if fused is None else fused


def make_loaders(cfg: TrainConfig, data: Dataset, device: torch.device,
                 layout: torch.memory_format = torch.contiguous_format) -> Loaders:
    train_split, val_split = data.train, None
    if cfg.val_fraction > 0:
        train_split, val_split = split_train_val(train_split, cfg.val_fraction,
                                                 cfg.val_split_seed)
    if cfg.train_samples is not None:
        train_split = train_split.subset(torch.arange(min(cfg.train_samples, len(train_split))))
    # batches arrive in the model's layout
    common = {"mean": data.mean, "std": data.std, "device": device, "memory_format": layout}
    train_loader = BatchLoader(train_split, cfg.batch_size, train=True, seed=cfg.seed,
                               augment=AUGMENTATIONS[cfg.augment](), **common)
    if len(train_loader) == 0:
        raise ConfigError(f"--batch-size {cfg.batch_size} exceeds the {len(train_split)} "
                         "training samples: no full batch to train on.")
    val_loader = BatchLoader(val_split, cfg.test_batch_size, train=False, **common) \
        if val_split is not None else None
    return Loaders(train_loader, BatchLoader(data.test, cfg.test_batch_size, train=False,
                                             **common), val_loader)


@dataclass
class Net:
    """The model and everything that trains it."""

    model: torch.nn.Module
    forward: Callable  # the model, compiled or not
    training: Training
    criterion: torch.nn.Module
    autocast: Callable  # a context manager factory: bf16 autocast or nothing
    kernels: Kernels = Kernels()


def build_net(cfg: TrainConfig, data: Dataset, device: torch.device, iters_per_epoch: int,
              on_note: Callable[[str], None], kernels: Kernels = Kernels()) -> Net:
    bf16 = cfg.amp and native_bf16(device)
    if cfg.amp and not bf16:
        on_note(f"note: --amp (bf16 autocast) needs CUDA or a CPU with native bf16 "
                f"(AVX512-BF16 or AMX); {device_name(device)} has neither: training in float32.")
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.input_shape[0]).to(device)
    model = model.to(memory_format=kernels.layout)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 \
        else nullcontext
    return Net(model, torch.compile(model) if cfg.compile else model,
               build_training(model, cfg, iters_per_epoch, kernels.fused_optimizer),
               torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing), autocast, kernels)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: CUDA, or a CPU with AVX512-BF16 or AMX (an
    emulated bf16 would be slower than float32, so --amp is ignored there)."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return any(getattr(torch.cpu, probe, lambda: False)()
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


def check_model_fits(cfg: TrainConfig, model: torch.nn.Module, loader: BatchLoader,
                     num_classes: int) -> None:
    """One test image through the model (eval mode, no RNG drawn): a model that cannot
    take the data set's images is a ConfigError before any file is written."""
    x, _ = next(iter(loader))
    model.eval()
    try:
        with torch.no_grad():
            logits = model(x[:1])
    except RuntimeError as error:
        raise ConfigError(f"--model {cfg.model} cannot take {cfg.dataset}'s images "
                          f"{tuple(x.shape[1:])} ({str(error).splitlines()[0]}).") from None
    if tuple(logits.shape) != (1, num_classes):
        raise ConfigError(f"--model {cfg.model} returns {tuple(logits.shape[1:])} outputs per "
                          f"image; expected {num_classes}, one logit per class.")


# ---- checkpoints --------------------------------------------------------------------


@dataclass
class RunState:
    """Where a run stands after its last completed epoch (what a checkpoint restores)."""

    epoch: int = 0
    wall_seconds: float = 0.0
    results: dict = field(default_factory=lambda: dict.fromkeys(
        ("best_test_acc", "best_epoch", "final_test_acc", "final_val_acc", "best_val_acc",
         "best_val_epoch", "test_acc_at_best_val", "test_top5_at_best_val")))

    def record(self, row: dict) -> bool:
        """Takes an epoch's row into the results; True when the epoch is the one to keep:
        the best validation accuracy where there is a val split (the checkpoint the ViT
        write-up tests), else the best test accuracy (pytorch_warmup's tables)."""
        r = self.results
        best_test = r["best_test_acc"] is None or row["test_acc"] > r["best_test_acc"]
        if best_test:
            r.update(best_test_acc=row["test_acc"], best_epoch=row["epoch"])
        r.update(final_test_acc=row["test_acc"], final_val_acc=row.get("val_acc"))
        self.epoch = row["epoch"]
        if "val_acc" not in row:
            return best_test
        best_val = r["best_val_acc"] is None or row["val_acc"] > r["best_val_acc"]
        if best_val:
            r.update(best_val_acc=row["val_acc"], best_val_epoch=row["epoch"],
                     test_acc_at_best_val=row["test_acc"],
                     test_top5_at_best_val=row["test_top5"])
        return best_val


def checkpoint_state(net: Net, device: torch.device, done: RunState, logs: Logs,
                     sharpness: Sharpness | None) -> dict:
    scheduler = net.training.lr_schedule.scheduler.state_dict()
    if "milestones" in scheduler:  # a Counter, which weights_only loading refuses
        scheduler["milestones"] = dict(scheduler["milestones"])
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {"model": net.model.state_dict(), "optimizer": net.training.optimizer.state_dict(),
            "scheduler": scheduler, "warmup": net.training.warmup.state_dict(), "rng": rng,
            "epoch": done.epoch, "wall_seconds": done.wall_seconds, "results": done.results,
            "rows": logs.rows()} | ({"sharpness": sharpness.state_dict()} if sharpness else {})


def restore(cfg: TrainConfig, run: RunDir, net: Net, device: torch.device,
            sharpness: Sharpness | None) -> RunState:
    """Loads the verified checkpoint into the objects, then drops the log rows written
    after it. Anything that does not fit raises CheckpointError before the folder is
    touched."""
    state = run.load_checkpoint(cfg, device)
    try:
        net.model.load_state_dict(state["model"])
        net.training.optimizer.load_state_dict(state["optimizer"])
        scheduler = state["scheduler"]
        if "milestones" in scheduler:
            scheduler = {**scheduler, "milestones": Counter(scheduler["milestones"])}
        net.training.lr_schedule.scheduler.load_state_dict(scheduler)
        net.training.warmup.load_state_dict(state["warmup"])
        torch.set_rng_state(state["rng"]["cpu"])
        if device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], device)
        if sharpness is not None and "sharpness" in state:  # its warm-start vectors
            sharpness.load_state_dict(state["sharpness"])
    except Exception as error:
        raise CheckpointError(f"{run.name}: the checkpoint does not fit this run's model "
                              f"or optimizer ({type(error).__name__}).") from None
    run.rewind(state["rows"])
    return RunState(state["epoch"], state["wall_seconds"], dict(state["results"]))


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model ("cpu (AMD EPYC 7B13)"), for speed tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return f"cpu ({line.split(':', 1)[1].strip()})"
        except OSError:
            pass
        return f"cpu ({platform.processor() or platform.machine()})"
    return device.type


def run_meta(run: RunDir, device: torch.device, iters_per_epoch: int, net: Net,
             resumed_at: int, options: RunOptions) -> dict:
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
        "autocast": "bf16" if net.autocast is not nullcontext else None,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed_at_epoch": resumed_at or None,
        "delay_schedule_iterations": net.training.lr_schedule.scheduler_delay,
        "iterations_per_epoch": iters_per_epoch,
        "diagnostics": options.diagnostics,
        "sharpness_every": options.sharpness_every,
    }


# ---- the loop -----------------------------------------------------------------------


def train(cfg: TrainConfig, out: Path, options: RunOptions | None = None,
          data: Dataset | None = None) -> RunResult:
    """Runs `cfg` to its end, or resumes it, in its folder under `out`. `data` skips
    loading the data set (benchmarks hand in synthetic data of the same shape)."""
    options = options or RunOptions()
    run = RunDir.of(out, cfg)
    if (finished := _already_complete(run, options.resume)) is not None:
        return finished
    if options.threads:
        torch.set_num_threads(options.threads)
    device = resolve_device(options.device)

    # ---- build (before anything is written: a missing data set leaves no run folder)
    with plugin_errors("building the run"):
        data = data if data is not None else load_dataset(cfg.dataset, options.data_dir)
        kernels = choose_kernels(cfg, device, options)
        loaders = make_loaders(cfg, data, device, kernels.layout)
        net = build_net(cfg, data, device, len(loaders.train), options.on_note, kernels)
        check_model_fits(cfg, net.model, loaders.test, data.num_classes)
    if options.tensorboard:
        check_tensorboard()

    # ---- one writer per run folder: a second process is refused here (RunBusy)
    lock = run.lock()
    try:
        if (finished := _already_complete(run, options.resume)) is not None:
            return finished  # finished by another process while this one was building
        run.check_files()
        return run_epochs(cfg, run, net, loaders, device, options)
    finally:
        lock.release()


def _already_complete(run: RunDir, resume: bool) -> RunResult | None:
    """The result of a complete run (nothing to do); RunExists for an unfinished one
    without --resume."""
    previous = run.read_summary()
    if previous is not None and previous.status is Status.COMPLETE:
        return RunResult(run, previous, already_complete=True)
    if run.has_files() and not resume:
        status = previous.status.value if previous else "unknown"
        raise RunExists(f"{run.path} already holds a run (status {status}); pass --resume "
                        "to continue it, or delete the folder to start over.")
    return None


def run_epochs(cfg: TrainConfig, run: RunDir, net: Net, loaders: Loaders,
               device: torch.device, options: RunOptions) -> RunResult:
    """Restore (or start fresh), then per epoch: train, evaluate, record, checkpoint."""
    sharpness = Sharpness(net.model, net.criterion, *loaders.train.probe_batch(), cfg.seed) \
        if options.sharpness_every else None
    if options.resume and run.has_checkpoint():
        # CheckpointError leaves the folder as it was
        done = restore(cfg, run, net, device, sharpness)
    else:
        run.start_fresh()
        done = RunState()
    iters = len(loaders.train)
    run.write_config(cfg)
    run.write_meta(run_meta(run, device, iters, net, done.epoch, options))
    logs = run.open_logs(loaders.val is not None, options.diagnostics, options.tensorboard,
                         first_step=done.epoch * iters + 1, iters_per_epoch=iters)
    monitor = Monitor(StepProbe(net.model, net.training.optimizer), sharpness,
                      options.sharpness_every, cfg.log_interval, logs.diagnostics,
                      logs.layers) if options.diagnostics else None
    summary = Summary(epochs_done=done.epoch, wall_seconds=done.wall_seconds, **done.results)
    run.write_summary(summary)
    clock = time.perf_counter()

    def finish(status: Status, error: str | None = None, **extra) -> RunResult:
        summary.status, summary.error = status, error
        summary.wall_seconds = done.wall_seconds + time.perf_counter() - clock
        for key, value in extra.items():
            setattr(summary, key, value)
        try:
            logs.close()
            run.write_summary(summary)
        except OSError:  # the disk that failed the run may refuse this too
            pass
        return RunResult(run, summary)

    bar = ProgressBar(cfg, iters, done.epoch, options.show_progress)
    try:
        with bar:
            for epoch in range(done.epoch, cfg.epochs):
                epoch_started = time.perf_counter()
                row = train_epoch(cfg, net, loaders.train, epoch, logs.steps, bar, monitor)
                row["test_loss"], row["test_acc"], row["test_top5"] = evaluate(net, loaders.test)
                if loaders.val is not None:
                    row["val_loss"], row["val_acc"], row["val_top5"] = evaluate(net, loaders.val)
                row["seconds"] = time.perf_counter() - epoch_started
                logs.epochs.append(row)
                if done.record(row) and options.save_model:
                    run.save_model(net.model.state_dict())
                done.wall_seconds = done.wall_seconds + time.perf_counter() - clock
                clock = time.perf_counter()
                run.save_checkpoint(cfg, checkpoint_state(net, device, done, logs, sharpness))
                summary = Summary(epochs_done=done.epoch, wall_seconds=done.wall_seconds,
                                  **done.results)
                run.write_summary(summary)
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


def train_epoch(cfg: TrainConfig, net: Net, loader: BatchLoader, epoch: int, steps_log: CsvLog,
                bar: ProgressBar, monitor: Monitor | None = None) -> dict:
    """One epoch of training steps; returns its train metrics (the start of the epoch's
    row in the epochs log) or raises Diverged."""
    net.model.train()
    optimizer, iters = net.training.optimizer, len(loader)
    started = time.perf_counter()
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    step = epoch * iters
    try:
        for i, (x, y) in enumerate(loader.batches(epoch)):
            step = epoch * iters + i + 1  # 1-based global iteration
            log_step = (step - 1) % cfg.log_interval == 0
            lr_used = optimizer.param_groups[0]["lr"]  # what this step applies (warmup included)
            with net.autocast():
                logits = net.forward(x)
                loss = net.criterion(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if log_step and monitor is not None:
                monitor.before_step()  # gradients complete, parameters not yet updated
            if cfg.grad_clip is not None:
                # foreach: the same floats as the per-parameter loop, in fewer dispatches
                torch.nn.utils.clip_grad_norm_(net.model.parameters(), cfg.grad_clip,
                                               foreach=True)
            optimizer.step()
            if log_step and monitor is not None:
                monitor.after_step(step, lr_used)  # host sync: one transfer, on log steps only
            net.training.lr_schedule.step()  # the schedule (when due) under the warmup
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == y).sum()
            if log_step:
                value = loss.item()  # host sync: only at log steps
                if not math.isfinite(value):
                    raise Diverged(f"loss became {value} at step {step} (epoch {epoch + 1})",
                                   epoch + 1, step)
                steps_log.append({"step": step, "epoch": epoch + 1, "lr": float(lr_used),
                                  "warmup_factor": net.training.warmup.factor_at(step - 1),
                                  "loss": value})
                bar.update(step, epoch, value, float(lr_used))
    except Diverged:
        raise
    except (Exception, SystemExit) as error:  # the run's failure says where it happened
        raise StepFailed(f"step {step} (epoch {epoch + 1})") from error
    train_loss = loss_sum.item() / iters  # host sync: epoch end
    seconds = time.perf_counter() - started
    if not math.isfinite(train_loss):
        raise Diverged(f"loss became {train_loss} in epoch {epoch + 1}", epoch + 1,
                       (epoch + 1) * iters)
    return {"epoch": epoch + 1, "train_loss": train_loss,
            "train_acc": correct.item() / (iters * loader.batch_size),
            "images_per_second": iters * loader.batch_size / seconds}


def evaluate(net: Net, loader: BatchLoader) -> tuple[float, float, float]:
    """Mean cross-entropy, top-1 and top-5 accuracy over every sample: one host sync at
    the end."""
    net.model.eval()
    sums = torch.zeros(3, device=loader.device)  # loss, top-1 hits, top-5 hits
    # on a CPU, forward passes over cache-sized chunks: ResNet-20 evaluates 2,560 images
    # 2.7x faster in chunks of 128 than in batches of 1000 (per-image logits do not depend
    # on what else is in the batch)
    chunk = EVAL_CHUNK_CPU if loader.device.type == "cpu" else loader.batch_size
    with torch.inference_mode(), net.autocast():  # no autograd bookkeeping at all
        for batch, labels in loader:
            for x, y in zip(batch.split(chunk), labels.split(chunk)):
                logits = net.forward(x).float()
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                hits = top == y[:, None]
                sums += torch.stack([F.cross_entropy(logits, y, reduction="sum"),
                                     hits[:, 0].sum(), hits.any(1).sum()])
    loss, top1, top5 = (sums / loader.num_samples).tolist()  # host sync: end of evaluation
    return loss, top1, top5


EVAL_CHUNK_CPU = 128


class ProgressBar:
    """A rich progress bar over the run's iterations (loss, LR, images/s at log steps)."""

    def __init__(self, cfg: TrainConfig, iters: int, start_epoch: int, enabled: bool):
        self.cfg, self.last = cfg, time.perf_counter()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  "
                              "{task.fields[speed]} img/s"), TimeRemainingColumn())
        self.progress = Progress(*columns, disable=not enabled, transient=True)
        self.bar = self.progress.add_task(cfg.task, total=cfg.epochs * iters,
                                          completed=start_epoch * iters, loss="-", lr="-",
                                          speed="-")

    def __enter__(self) -> ProgressBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, step: int, epoch: int, loss: float, lr: float) -> None:
        now = time.perf_counter()
        images = min(self.cfg.log_interval, step) * self.cfg.batch_size
        self.progress.update(self.bar, completed=step, loss=f"{loss:.4f}", lr=f"{lr:.3g}",
                             description=f"epoch {epoch + 1}/{self.cfg.epochs}",
                             speed=f"{images / max(now - self.last, 1e-9):,.0f}")
        self.last = now
