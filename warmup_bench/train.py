"""The training loop and the run lifecycle: fresh start, resume, divergence, outputs.

Read top to bottom: build everything from the config, restore a checkpoint if resuming,
then per epoch train (warmup dampening every iteration), evaluate, append CSV rows,
checkpoint. The host syncs only at log intervals and at epoch ends.
"""

from __future__ import annotations

import math
import platform
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from . import __version__
from .data import AUGMENTATIONS, BatchLoader, load_dataset, split_train_val
from .files import atomic_path, write_json_atomic
from .models import CONV_NETS, build_model
from .optim import build_training
from .runs import (
    STEP_COLUMNS,
    CsvLog,
    epoch_columns,
    read_summary,
    run_dir,
    truncate_rows,
    write_summary,
)
from .tasks import TrainConfig


class RunExists(Exception):
    """The run directory holds an unfinished run and --resume was not given."""


@dataclass
class RunResult:
    status: str  # complete / diverged / interrupted / already-complete
    directory: Path
    summary: dict


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available on this machine.")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {name}: MPS is not available on this machine.")
    return device


def evaluate(model, loader: BatchLoader, autocast) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over every sample: one host sync at the end."""
    model.eval()
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    with torch.no_grad(), autocast():
        for x, y in loader:
            logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
            correct += (logits.argmax(1) == y).sum()
    n = loader.num_samples
    return loss_sum.item() / n, correct.item() / n


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _scheduler_state(scheduler) -> dict:
    state = scheduler.state_dict()
    if "milestones" in state:  # a Counter, which weights_only loading refuses
        state["milestones"] = dict(state["milestones"])
    return state


def _load_scheduler_state(scheduler, state: dict) -> None:
    from collections import Counter

    if "milestones" in state:
        state = {**state, "milestones": Counter(state["milestones"])}
    scheduler.load_state_dict(state)


def train(cfg: TrainConfig, out: Path, *, data_dir: Path | None = None, device: str = "auto",
          resume: bool = False, save_model: bool = False, show_progress: bool = False,
          on_note=print) -> RunResult:
    directory = run_dir(out, cfg)
    previous = read_summary(directory)
    if previous and previous.get("status") == "complete":
        return RunResult("already-complete", directory, previous)
    checkpoint_path = directory / "checkpoint.pt"
    if directory.exists() and not resume and any(directory.iterdir()):
        raise RunExists(f"{directory} already holds a run (status "
                        f"{(previous or {}).get('status', 'unknown')}); pass --resume to "
                        "continue it, or delete the folder to start over.")

    dev = resolve_device(device)
    if cfg.amp and dev.type != "cuda":
        on_note("note: --amp (bf16 autocast) applies on CUDA only; training in float32.")
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) \
        if cfg.amp and dev.type == "cuda" else nullcontext

    # ---- data (before anything is written: a missing data set leaves no run folder)
    data = load_dataset(cfg.dataset, data_dir)
    train_split, val_split = data.train, None
    if cfg.val_fraction > 0:
        train_split, val_split = split_train_val(train_split, cfg.val_fraction,
                                                 cfg.val_split_seed)
    if cfg.train_samples is not None:
        train_split = train_split.subset(torch.arange(min(cfg.train_samples, len(train_split))))
    common = {"mean": data.mean, "std": data.std, "num_classes": data.num_classes, "device": dev}
    train_loader = BatchLoader(train_split, cfg.batch_size, train=True, seed=cfg.seed,
                               augment=AUGMENTATIONS[cfg.augment](), **common)
    if len(train_loader) == 0:
        raise ValueError(f"--batch-size {cfg.batch_size} exceeds the {len(train_split)} "
                         "training samples: no full batch to train on.")
    test_loader = BatchLoader(data.test, cfg.test_batch_size, train=False, **common)
    val_loader = BatchLoader(val_split, cfg.test_batch_size, train=False, **common) \
        if val_split is not None else None

    # ---- model, optimizer, schedule, warmup
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, data.num_classes, data.input_shape[0]).to(dev)
    channels_last = dev.type == "cuda" and cfg.model in CONV_NETS
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    iters = len(train_loader)
    optimizer, schedule, warmup, delay = build_training(model, cfg, iters)
    forward = torch.compile(model) if cfg.compile else model
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    directory.mkdir(parents=True, exist_ok=True)
    start_epoch, wall_before = 0, 0.0
    best = {"best_test_acc": None, "best_epoch": None}
    if resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        _load_scheduler_state(schedule.scheduler, state["scheduler"])
        warmup.load_state_dict(state["warmup"])
        _set_rng_state(state["rng"], dev)
        start_epoch, wall_before, best = state["epoch"], state["wall_seconds"], state["best"]
        truncate_rows(directory / "steps.csv", state["rows"]["steps"])
        truncate_rows(directory / "epochs.csv", state["rows"]["epochs"])
    else:
        for name in ("steps.csv", "epochs.csv", "checkpoint.pt", "model.pt"):
            (directory / name).unlink(missing_ok=True)
    write_json_atomic(directory / "config.json", {
        **cfg.to_dict(), "run_name": directory.name,
        "versions": {"warmup_bench": __version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "device": str(dev), "device_name": torch.cuda.get_device_name(dev)
        if dev.type == "cuda" else dev.type, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "resumed_at_epoch": start_epoch if start_epoch else None,
        "delay_schedule_iterations": delay, "iterations_per_epoch": iters,
    })

    steps_log = CsvLog(directory / "steps.csv", STEP_COLUMNS)
    epochs_log = CsvLog(directory / "epochs.csv", epoch_columns(val_loader is not None))
    summary = {"status": "running", **best, "final_test_acc": None,
               "epochs_done": start_epoch, "wall_seconds": wall_before, "error": None}
    write_summary(directory, summary)
    started = time.perf_counter()

    def finish(status: str, error: str | None = None, **extra) -> RunResult:
        steps_log.close()
        epochs_log.close()
        summary.update(status=status, error=error,
                       wall_seconds=wall_before + time.perf_counter() - started, **extra)
        write_summary(directory, summary)
        return RunResult(status, directory, summary)

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}  "
                          "{task.fields[speed]} img/s"), TimeRemainingColumn())
    progress = Progress(*columns, disable=not show_progress, transient=True)
    bar = progress.add_task(cfg.task, total=cfg.epochs * iters, completed=start_epoch * iters,
                            loss="-", lr="-", speed="-")
    try:
        with progress:
            for epoch in range(start_epoch, cfg.epochs):
                model.train()
                epoch_start = last_log_time = time.perf_counter()
                loss_sum = torch.zeros((), device=dev)
                correct = torch.zeros((), dtype=torch.long, device=dev)
                for i, (x, y) in enumerate(train_loader.batches(epoch)):
                    step = epoch * iters + i + 1  # 1-based global iteration
                    if channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    lr_used = optimizer.param_groups[0]["lr"]
                    with autocast():
                        logits = forward(x)
                        loss = criterion(logits.float(), y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if cfg.grad_clip is not None:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    with warmup.dampening():
                        end_of_epoch = i == iters - 1
                        if (end_of_epoch or not schedule.per_epoch) and step >= delay:
                            schedule.scheduler.step()
                    loss_sum += loss.detach()
                    correct += (logits.argmax(1) == y).sum()
                    if (step - 1) % cfg.log_interval == 0:
                        value = loss.item()  # the one host sync between epoch ends
                        if not math.isfinite(value):
                            return finish("diverged", f"loss became {value} at step {step} "
                                          f"(epoch {epoch + 1})",
                                          diverged_at={"epoch": epoch + 1, "step": step})
                        omega = warmup.warmup_factor(step - 1, **warmup.warmup_params[0])
                        steps_log.append({"step": step, "epoch": epoch + 1, "lr": lr_used,
                                          "warmup_factor": omega, "loss": value})
                        now = time.perf_counter()
                        done = min(cfg.log_interval, step) * cfg.batch_size
                        progress.update(bar, completed=step, loss=f"{value:.4f}",
                                        lr=f"{lr_used:.3g}", description=f"epoch {epoch + 1}"
                                        f"/{cfg.epochs}",
                                        speed=f"{done / max(now - last_log_time, 1e-9):,.0f}")
                        last_log_time = now
                train_loss = loss_sum.item() / iters
                train_seconds = time.perf_counter() - epoch_start
                if not math.isfinite(train_loss):
                    return finish("diverged", f"loss became {train_loss} in epoch {epoch + 1}",
                                  diverged_at={"epoch": epoch + 1, "step": (epoch + 1) * iters})
                row = {"epoch": epoch + 1, "train_loss": train_loss,
                       "train_acc": correct.item() / (iters * cfg.batch_size)}
                row["test_loss"], row["test_acc"] = evaluate(forward, test_loader, autocast)
                if val_loader is not None:
                    row["val_loss"], row["val_acc"] = evaluate(forward, val_loader, autocast)
                row["seconds"] = time.perf_counter() - epoch_start
                row["images_per_second"] = iters * cfg.batch_size / train_seconds
                epochs_log.append(row)
                if best["best_test_acc"] is None or row["test_acc"] > best["best_test_acc"]:
                    best = {"best_test_acc": row["test_acc"], "best_epoch": epoch + 1}
                    if save_model:
                        _save_checkpoint(directory / "model.pt", model.state_dict())
                wall = wall_before + time.perf_counter() - started
                _save_checkpoint(checkpoint_path, {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": _scheduler_state(schedule.scheduler),
                    "warmup": warmup.state_dict(), "rng": _rng_state(dev), "epoch": epoch + 1,
                    "wall_seconds": wall, "best": best,
                    "rows": {"steps": steps_log.rows, "epochs": epochs_log.rows},
                })
                summary.update(best, final_test_acc=row["test_acc"], epochs_done=epoch + 1,
                               wall_seconds=wall)
                if val_loader is not None:
                    summary["final_val_acc"] = row["val_acc"]
                write_summary(directory, summary)
    except KeyboardInterrupt:
        finish("interrupted", "interrupted by the user; --resume continues from the last "
               "completed epoch")
        raise
    except BaseException as error:
        finish("failed", f"{type(error).__name__}: {error}")
        raise
    return finish("complete")
