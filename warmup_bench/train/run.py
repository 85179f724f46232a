"""The lifecycle of every run, alone (`train`) or in a pack (`train_pack`, train.pack):
build everything from the configs (before any file is written), take each run folder's
lock, restore a checkpoint or start fresh, then per epoch train, evaluate, record,
checkpoint; finish each run with its status (complete, diverged, failed, interrupted) in
its summary. A run alone is a pack of one member whose model is called directly.

A pack commits an epoch member by member, each keeping its checkpoint of the epoch
before until all have written theirs; a pack killed in between resumes every member from
the same epoch (`align`), so a resumed pack trains exactly as an uninterrupted one."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

from ..config import TrainConfig
from ..data import Dataset, load_dataset
from ..errors import UserError
from ..execution import RunOptions
from ..plugins import blame, describe_error, plugin_errors
from ..runs import RunBusy, RunDir, Status
from .build import build_net, check_model_fits, make_loaders
from .device import (
    Kernels,
    busy_note,
    choose_kernels,
    fused_optimizer,
    native_bf16,
    resolve_device,
    slowdown_note,
    use_arithmetic,
)
from .loop import DirectModel, Member, StepFailed, train_epoch
from .pack import PackedModel, is_out_of_memory, pack_key
from .session import RunResult, RunSession


class RunExists(UserError):
    """The run directory holds an unfinished run and --resume was not given."""


class PackError(UserError):
    """Runs that cannot train in one pack (they differ in a shared setting)."""


class RunFailed(Exception):
    """The run ended `failed`; the message (one line, the summary's error) says why."""


def train(cfg: TrainConfig, out: Path, options: RunOptions | None = None,
          data: Dataset | None = None) -> RunResult:
    """Runs `cfg` to its end, or resumes it, in its folder under `out`: a pack of one,
    whose model is called directly. Raises what kept it from training (RunExists,
    RunBusy, RunFailed, ...). `data` skips loading the data set (benchmarks hand in
    synthetic data of the same shape)."""
    [outcome] = train_runs([cfg], out, options, data, packed=False)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def train_pack(cfgs: list[TrainConfig], out: Path, options: RunOptions | None = None,
               data: Dataset | None = None) -> list[RunResult | Exception]:
    """Trains (or resumes) `cfgs` as one pack (train.pack: one vmapped model); per
    config, in order, its RunResult or the error that kept it out (RunBusy: another
    process holds it; RunExists; RunFailed: it ended failed, with the reason)."""
    if len({pack_key(cfg) for cfg in cfgs}) > 1:
        raise PackError("these runs differ in a setting a pack shares (the model, data, "
                        "batch size, epochs, optimizer, schedule, ...): they cannot be packed.")
    return train_runs(cfgs, out, options, data, packed=True)


def train_runs(cfgs: list[TrainConfig], out: Path, options: RunOptions | None,
               data: Dataset | None, packed: bool) -> list[RunResult | Exception]:
    """The one lifecycle of every run: skip the complete, build every member (before any
    file is written: a missing data set leaves no run folder), take each folder's lock,
    align the members' checkpoints, then train them together to their end. Per config,
    its RunResult or the error that kept it out; a member's trouble keeps only that
    member out."""
    options = options or RunOptions()
    options.check({cfg.log_interval for cfg in cfgs})  # refused before anything is read
    device = resolve_device(options.device)
    outcomes: dict[int, RunResult | Exception] = {}
    todo = []
    for k, cfg in enumerate(cfgs):
        try:
            finished = already_complete(RunDir.of(out, cfg), options)
        except UserError as error:
            outcomes[k] = error
            continue
        if finished is not None:
            outcomes[k] = finished
        else:
            todo.append(k)
    if not todo:
        return [outcomes[k] for k in range(len(cfgs))]
    if options.threads:
        torch.set_num_threads(options.threads)
    use_arithmetic(device, options.deterministic, options.tf32)
    with plugin_errors("building the pack" if packed else "building the run"):
        own = options.data.spec if options.data is not None else None
        data = data if data is not None else load_dataset(cfgs[0].dataset, options.data_dir,
                                                          own)
        members = build_members([cfgs[k] for k in todo], data, device, options, packed)
    locks = []
    try:
        ready: dict[int, int] = {}  # id(member) -> its index in cfgs
        for k, member in zip(todo, members):
            run = RunDir.of(out, member.cfg)
            try:
                lock = run.lock()  # one writer per run folder: a second process is refused
            except (RunBusy, OSError) as error:  # its folder only: the others go on
                outcomes[k] = error
                continue
            locks.append(lock)
            finished = already_complete(run, options)  # finished meanwhile elsewhere
            if finished is not None:
                outcomes[k] = finished
                continue
            try:
                run.check_files()  # a damaged folder keeps that member out, not the pack
            except UserError as error:
                outcomes[k] = error
                continue
            ready[id(member)] = k
        waiting = [m for m in members if id(m) in ready]
        for group in align(waiting, out, options):
            for member, result in zip(group, run_members(group, out, options, packed)):
                outcomes[ready[id(member)]] = result
    finally:
        for lock in locks:
            lock.release()
    return [outcomes[k] for k in range(len(cfgs))]


def build_members(cfgs: list[TrainConfig], data: Dataset, device: torch.device,
                  options: RunOptions, packed: bool) -> list[Member]:
    """Each member built as its run alone builds itself (the same seed, the same initial
    weights). A run alone takes the kernels chosen for its device (channels_last, the
    fused step, --compile) and torch's default generator; a pack's members the contiguous
    layout (vmap's grouped convolutions take it), and each its own generator holding
    the RNG state its run alone would train from."""
    if packed:  # the data moves to the device once, not once per member
        data = dataclasses.replace(data, train=data.train.to(device),
                                   test=data.test.to(device))
        kernels = Kernels(torch.contiguous_format,
                          fused_optimizer(device, options.fused_optimizer),
                          cfgs[0].amp and native_bf16(device))
    else:
        kernels = choose_kernels(cfgs[0], device, options.channels_last,
                                 options.fused_optimizer, options.note, options.compile_mode)
    members = []
    for cfg in cfgs:
        loaders = make_loaders(cfg, data, device, kernels.layout)
        net = build_net(cfg, data, device, len(loaders.train), kernels)
        if packed:
            generator = torch.Generator()
            generator.set_state(torch.get_rng_state())  # after the initialisation draws
            net = dataclasses.replace(net, generator=generator)
        members.append(Member(cfg, net, loaders))
    check_model_fits(cfgs[0], members[0].net.model, members[0].loaders.test, data.num_classes)
    return members


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


def run_members(members: list[Member], out: Path, options: RunOptions, packed: bool
                ) -> list[RunResult | Exception]:
    """Opens every member's run (restored or fresh), then per epoch: train them all,
    and each evaluates, records and checkpoints (a pack's members each keeping the
    checkpoint before until all have committed); each ends with its status."""
    device = members[0].net.device
    names = [RunDir.of(out, m.cfg).name for m in members]
    outcomes: dict[int, RunResult | Exception] = {}
    live = []
    for k, member in enumerate(members):
        try:
            member.session = RunSession(member.cfg, RunDir.of(out, member.cfg), member.net,
                                        member.loaders, options,
                                        pack_meta(members, k, names) if packed else None)
            live.append(member)
        except (UserError, OSError) as error:  # its checkpoint does not fit, its folder
            outcomes[k] = error                 # refuses writes: the others go on
    if not live:
        return [outcomes[k] for k in range(len(members))]

    def diverged(member: Member) -> None:
        error = member.diverged
        outcomes[members.index(member)] = member.session.finish(
            Status.DIVERGED, str(error), diverged_at=error.at)

    def end_all(status: Status, reason: str | None) -> None:
        for member in live:
            k = members.index(member)
            if k not in outcomes:
                outcomes[k] = member.session.finish(status, reason)

    def speed_note(note: str) -> None:
        """Said at a terminal, and recorded in every member's summary (whoever reads the
        run's numbers later learns that another process shared the cores)."""
        if options.on_hint:
            options.on_hint(note)
        for member in live:
            member.session.summary.note(note.removeprefix("note: "))

    if device.type == "cpu" and hasattr(os, "getloadavg") and (note := busy_note(
            os.getloadavg()[0], os.cpu_count() or 1, torch.get_num_threads())):
        speed_note(note)
    model = PackedModel([m.net.model for m in live]) if packed else DirectModel()
    fastest, slowed = 0.0, False
    try:
        for epoch in range(live[0].session.state.epoch, live[0].cfg.epochs):
            epoch_started, cpu_started = time.perf_counter(), time.process_time()
            rows = train_epoch(live, model, epoch, diverged, options.on_progress)
            # the process's CPU time (all threads) over what its threads could have had
            cpu_share = (time.process_time() - cpu_started) / max(
                1e-9, (time.perf_counter() - epoch_started) * torch.get_num_threads())
            live = [m for k, m in enumerate(live) if k in rows]
            for member, k in zip(live, sorted(rows)):
                member.session.end_epoch(rows[k], epoch_started, keep_previous=packed)
            if packed:
                for member in live:  # every member has committed the epoch
                    member.session.run.drop_previous_checkpoint()
            if not live:
                break
            row = rows[min(rows)]
            fastest = max(fastest, row["images_per_second"])
            if not slowed and (note := slowdown_note(
                    row["epoch"], row["images_per_second"], fastest, torch.get_num_threads(),
                    cpu_share, device)):
                slowed = True  # said once
                speed_note(note)
    except KeyboardInterrupt:
        end_all(Status.INTERRUPTED, INTERRUPTED)
        raise
    except (Exception, SystemExit) as error:  # plugin code may raise anything, even exit
        if packed and (is_out_of_memory(error) or is_out_of_memory(error.__cause__ or error)):
            reason = (f"out of memory training a pack of {len(live)} on {device}: pass a "
                      f"smaller --pack (or --pack auto, which sizes packs to fit).")
        else:
            reason = failure_reason(error)
        end_all(Status.FAILED, reason)
        for k in range(len(members)):
            if isinstance(outcomes.get(k), RunResult) and outcomes[k].status is Status.FAILED:
                outcomes[k] = RunFailed(reason)
                outcomes[k].__cause__ = error
    except BaseException as error:
        end_all(Status.FAILED, describe_error(error))
        raise
    end_all(Status.COMPLETE, None)
    return [outcomes[k] for k in range(len(members))]


def align(members: list[Member], out: Path, options: RunOptions) -> list[list[Member]]:
    """The members grouped by the epoch they resume from (one group when nothing was
    interrupted mid-commit, and always for a run alone, which keeps no previous
    checkpoint). A member one epoch ahead of the others whose previous checkpoint is still
    kept, verified, at their epoch (the pack was killed while committing) goes back to
    it, or to a fresh start where the marker says there was none (killed while committing
    epoch 1); a previous checkpoint that does not verify is removed and the member keeps
    its own."""
    if not (options.resume and not options.restart):
        return [members] if members else []
    epochs = {}
    for member in members:
        run = RunDir.of(out, member.cfg)
        if run.has_previous_checkpoint() and not run.has_checkpoint():
            if checkpoint_epoch(run, member.cfg, previous=True) is not None:
                run.roll_back_checkpoint()  # killed between the two renames
        epochs[id(member)] = checkpoint_epoch(run, member.cfg) or 0
    if members:
        first = min(epochs.values())
        for member in members:
            run = RunDir.of(out, member.cfg)
            if epochs[id(member)] > first and run.has_previous_checkpoint() and \
                    checkpoint_epoch(run, member.cfg, previous=True) == first:
                run.roll_back_checkpoint()
                epochs[id(member)] = first
            run.drop_previous_checkpoint()
    groups: dict[int, list[Member]] = {}
    for member in members:
        groups.setdefault(epochs[id(member)], []).append(member)
    return [groups[epoch] for epoch in sorted(groups)]


def checkpoint_epoch(run: RunDir, cfg: TrainConfig, previous: bool = False) -> int | None:
    """The epoch a run's checkpoint (or previous checkpoint) holds: 0 without one (or
    where the previous one is the marker that there was none), None for one that does not
    verify (RunSession's restore names what is wrong with it)."""
    if not (run.has_previous_checkpoint() if previous else run.has_checkpoint()) or \
            previous and run.previous_was_none():
        return 0
    try:
        return run.load_checkpoint(cfg, previous)["epoch"]
    except UserError:
        return None


def pack_meta(members: list[Member], index: int, names: list[str]) -> dict:
    """meta.json's `packed`: how many trained together, who, and which one this is."""
    return {"size": len(members), "members": names, "index": index}


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
