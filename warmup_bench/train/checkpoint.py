"""A run's state after its last completed epoch, and its checkpoint: saved every epoch,
restored on --resume so that the resumed run's files equal an uninterrupted run's."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from ..diagnostics import Sharpness
from ..runs import CheckpointError, Logs, RunDir, Summary
from ..runs.summary import RECORDED
from .build import Net

# the Summary fields a checkpoint carries (its "results"), as it has since 0.1.0
RESULT_KEYS = RECORDED  # the summary's numbers a checkpoint carries (older ones: a subset)


@dataclass
class RunState:
    """Where a run stands after its last completed epoch: its summary so far."""

    summary: Summary = field(default_factory=Summary)

    @property
    def epoch(self) -> int:
        return self.summary.epochs_done

    def record(self, row: dict) -> bool:
        """Takes an epoch's row into the summary; True when the epoch is the one to keep
        (see Summary.record)."""
        return self.summary.record(row)


def checkpoint_state(net: Net, state: RunState, logs: Logs,
                     sharpness: Sharpness | None) -> dict:
    scheduler = net.training.lr_schedule.scheduler.state_dict()
    if "milestones" in scheduler:  # a Counter, which weights_only loading refuses
        scheduler["milestones"] = dict(scheduler["milestones"])
    rng = {"cpu": net.generator.get_state()}
    if net.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(net.device)
    summary = state.summary
    return {"model": own_storage(net.model.state_dict()),
            "optimizer": net.training.optimizer.state_dict(),
            "scheduler": scheduler, "warmup": net.training.warmup.state_dict(), "rng": rng,
            "epoch": summary.epochs_done, "wall_seconds": summary.wall_seconds,
            "results": {key: getattr(summary, key) for key in RESULT_KEYS},
            "notes": list(summary.notes), "rows": logs.rows()} | \
        ({"sharpness": sharpness.state_dict()} if sharpness else {})


def own_storage(state_dict: dict) -> dict:
    """The state dict with every tensor in storage of its own: a pack member's weights
    are views into the pack's stacked tensors, which torch.save would write whole. (A
    run alone's is returned as it is: its checkpoint bytes do not change.)"""
    def is_view(value) -> bool:
        return isinstance(value, torch.Tensor) and \
            value.untyped_storage().nbytes() > value.nbytes
    if not any(is_view(value) for value in state_dict.values()):
        return state_dict
    compact = type(state_dict)((key, value.clone() if is_view(value) else value)
                               for key, value in state_dict.items())
    if hasattr(state_dict, "_metadata"):  # module versions, which load_state_dict reads
        compact._metadata = state_dict._metadata
    return compact


def restore(run: RunDir, cfg, net: Net, sharpness: Sharpness | None) -> RunState:
    """Loads the verified checkpoint into the objects, then drops the log rows written
    after it. Anything that does not fit raises CheckpointError before the folder is
    touched."""
    state = run.load_checkpoint(cfg)  # on the CPU: the objects below place their tensors
    try:
        net.model.load_state_dict(state["model"])
        net.training.optimizer.load_state_dict(state["optimizer"])
        scheduler = state["scheduler"]
        if "milestones" in scheduler:
            scheduler = {**scheduler, "milestones": Counter(scheduler["milestones"])}
        net.training.lr_schedule.scheduler.load_state_dict(scheduler)
        net.training.warmup.load_state_dict(state["warmup"])
        net.generator.set_state(state["rng"]["cpu"])
        if net.device.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], net.device)
        if sharpness is not None and "sharpness" in state:  # its warm-start vectors
            sharpness.load_state_dict(state["sharpness"])
        if net.training.schedule_free:  # saved at its averaged weights: train at y again
            net.training.optimizer.train()
    except Exception as error:
        raise CheckpointError(f"{run.name}: the checkpoint does not fit this run's model "
                              f"or optimizer ({type(error).__name__}).") from None
    run.rewind(state["rows"])
    return RunState(Summary(epochs_done=state["epoch"], wall_seconds=state["wall_seconds"],
                            notes=list(state.get("notes", [])),  # older: none
                            **state["results"]))
