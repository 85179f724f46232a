"""Packed training, the lifecycle: `train_pack(cfgs, out, options)` trains runs that share
a pack key (train.pack) in one process. Every member is a run: its own folder and lock,
and the files, columns, config.json and name of its run alone; meta.json adds
`packed` (the pack's size and members). Per epoch the pack trains, then every member
evaluates, records and checkpoints on its own (RunSession).

A pack commits an epoch member by member, each keeping its checkpoint of the epoch
before until all have written theirs; a pack killed in between resumes every member from
the same epoch (`align`), so a resumed pack trains exactly as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from ..config import TrainConfig
from ..data import Dataset, load_dataset
from ..errors import UserError
from ..execution import RunOptions
from ..plugins import describe_error, plugin_errors
from ..runs import RunBusy, RunDir, Status
from .build import build_net, check_model_fits, make_loaders
from .device import Kernels, fused_optimizer, native_bf16, resolve_device, use_arithmetic
from .pack import Member, PackedModel, is_out_of_memory, pack_key, train_pack_epoch
from .run import (
    INTERRUPTED,
    RunFailed,
    RunResult,
    RunSession,
    already_complete,
    failure_reason,
)


class PackError(UserError):
    """Runs that cannot train in one pack (they differ in a shared setting)."""


def train_pack(cfgs: list[TrainConfig], out: Path, options: RunOptions | None = None,
               data: Dataset | None = None) -> list[RunResult | Exception]:
    """Trains (or resumes) `cfgs` as one pack; per config, in order, its RunResult or the
    error that kept it out (RunBusy: another process holds it; RunExists; RunFailed: it
    ended failed, with the reason). `data` skips loading the data set."""
    options = options or RunOptions()
    if len({pack_key(cfg) for cfg in cfgs}) > 1:
        raise PackError("these runs differ in a setting a pack shares (the model, data, "
                        "batch size, epochs, optimizer, schedule, ...): they cannot be packed.")
    options.check({cfg.log_interval for cfg in cfgs})
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
    if todo:
        if options.threads:
            torch.set_num_threads(options.threads)
        use_arithmetic(device, options.deterministic, options.tf32)
        with plugin_errors("building the pack"):
            own = options.data.spec if options.data is not None else None
            data = data if data is not None else load_dataset(cfgs[0].dataset,
                                                              options.data_dir, own)
            members = build_members([cfgs[k] for k in todo], data, device, options)
        locks = []
        try:
            ready: dict[int, int] = {}  # id(member) -> its index in cfgs
            for k, member in zip(todo, members):
                run = RunDir.of(out, member.cfg)
                try:
                    lock = run.lock()
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
                for member, result in zip(group, run_pack(group, out, options)):
                    outcomes[ready[id(member)]] = result
        finally:
            for lock in locks:
                lock.release()
    return [outcomes[k] for k in range(len(cfgs))]


def build_members(cfgs: list[TrainConfig], data: Dataset, device: torch.device,
                  options: RunOptions) -> list[Member]:
    """Each member built as its run alone builds itself (the same seed, the same initial
    weights), in the contiguous layout (vmap's grouped convolutions take it), with its
    own generator holding the RNG state its run alone would train from."""
    # the data moves to the device once, not once per member
    data = dataclasses.replace(data, train=data.train.to(device), test=data.test.to(device))
    kernels = Kernels(torch.contiguous_format, fused_optimizer(device, options.fused_optimizer),
                      cfgs[0].amp and native_bf16(device))
    members = []
    for cfg in cfgs:
        loaders = make_loaders(cfg, data, device, kernels.layout)
        net = build_net(cfg, data, device, len(loaders.train), kernels)
        generator = torch.Generator()
        generator.set_state(torch.get_rng_state())  # after the initialisation draws
        members.append(Member(cfg, dataclasses.replace(net, generator=generator), loaders))
    check_model_fits(cfgs[0], members[0].net.model, members[0].loaders.test, data.num_classes)
    return members


def align(members: list[Member], out: Path, options: RunOptions) -> list[list[Member]]:
    """The members grouped by the epoch they resume from (one group when nothing was
    interrupted mid-commit). A member one epoch ahead of the others whose previous
    checkpoint is still kept, verified, at their epoch (the pack was killed while
    committing) goes back to it, or to a fresh start where the marker says there was
    none (killed while committing epoch 1); a previous checkpoint that does not verify
    is removed and the member keeps its own."""
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


def run_pack(members: list[Member], out: Path, options: RunOptions
             ) -> list[RunResult | Exception]:
    """Opens every member's run, then trains the pack epoch by epoch to the end."""
    device = members[0].net.device
    names = [RunDir.of(out, m.cfg).name for m in members]
    outcomes: dict[int, RunResult | Exception] = {}
    open_members = []
    for k, member in enumerate(members):
        try:
            member.session = RunSession(member.cfg, RunDir.of(out, member.cfg), member.net,
                                        member.loaders, options,
                                        pack_meta(members, k, names))
            open_members.append(member)
        except (UserError, OSError) as error:  # its checkpoint does not fit, its folder
            outcomes[k] = error                 # refuses writes: the others go on
    live = list(open_members)

    def diverged(member: Member) -> None:
        error = member.diverged
        outcomes[members.index(member)] = member.session.finish(
            Status.DIVERGED, str(error), diverged_at=error.at)

    def end_all(status: Status, reason: str) -> None:
        for member in live:
            k = members.index(member)
            if k not in outcomes:
                outcomes[k] = member.session.finish(status, reason)

    if live:
        packed = PackedModel([m.net.model for m in live])
        try:
            for epoch in range(live[0].session.state.epoch, live[0].cfg.epochs):
                epoch_started = time.perf_counter()
                rows = train_pack_epoch(live, packed, epoch, diverged)  # by index in live
                live = [m for k, m in enumerate(live) if k in rows]
                for member, k in zip(live, sorted(rows)):
                    member.session.end_epoch(rows[k], epoch_started, keep_previous=True)
                for member in live:  # every member has committed the epoch
                    member.session.run.drop_previous_checkpoint()
                if not live:
                    break
        except KeyboardInterrupt:
            end_all(Status.INTERRUPTED, INTERRUPTED)
            raise
        except (Exception, SystemExit) as error:
            if is_out_of_memory(error) or is_out_of_memory(error.__cause__ or error):
                reason = (f"out of memory training a pack of {len(live)} on {device}: pass a "
                          f"smaller --pack (or --pack auto, which sizes packs to fit).")
            else:
                reason = failure_reason(error)
            end_all(Status.FAILED, reason)
            for k in range(len(members)):
                if isinstance(outcomes.get(k), RunResult) and \
                        outcomes[k].status is Status.FAILED:
                    outcomes[k] = RunFailed(reason)
        except BaseException as error:
            end_all(Status.FAILED, describe_error(error))
            raise
        end_all(Status.COMPLETE, None)
    return [outcomes[k] for k in range(len(members))]
