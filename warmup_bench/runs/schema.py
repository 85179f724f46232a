"""The columns of each CSV a run folder holds, declared once: their order, the bound of
every value, and which are written only sometimes. The writers (CsvLog), the readers
(read_csv), the integrity checks and the producers of the rows (the training loop, the
diagnostics) all read them here."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


class Bound(NamedTuple):
    """The values a CSV column may hold: within [low, high], whole numbers if `integer`,
    and NaN / inf only where `nonfinite` (a diagnostic that does not apply is empty)."""

    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    nonfinite: bool = False


# counts stop at 2^53, where float64 (which every reader may use) stops being exact
COUNT, SIZE, FRACTION = Bound(1, 2.0 ** 53, integer=True), Bound(0), Bound(0, 1)
ANY = Bound(nonfinite=True)


@dataclass(frozen=True)
class Column:
    name: str
    bound: Bound | None = ANY  # None: text
    val_only: bool = False  # written only by runs with a validation split
    required: bool = True  # every version wrote it: a file without it is damaged
    precise_only: bool = False  # written only by runs with --precise-bn


@dataclass(frozen=True)
class CsvSchema:
    """A CSV's columns in order; its first column is its key (step or epoch)."""

    file: str
    columns: tuple[Column, ...]
    one_row_per_key: bool = True  # layers.csv: a row per layer of a step

    def names(self, has_val: bool = True, precise_bn: bool = False) -> list[str]:
        """The header a run writes (`has_val`: it holds out a validation split;
        `precise_bn`: it also evaluates with recomputed BatchNorm statistics)."""
        return [c.name for c in self.columns if (has_val or not c.val_only)
                and (precise_bn or not c.precise_only)]

    @property
    def required(self) -> list[str]:
        """The columns a reader insists on (those every version wrote)."""
        return [c.name for c in self.columns if c.required and not c.val_only
                and not c.precise_only]


PRECISE = "_pbn"  # the suffix of an evaluation column's --precise-bn twin


def _numbers(names: tuple[str, ...], bound: Bound = ANY) -> tuple[Column, ...]:
    return tuple(Column(name, bound) for name in names)


# diagnostics.py fills STEP_STATS and LAYER_STATS by name, its Sharpness the rest
STEP_STATS = ("grad_norm", "param_norm", "update_norm", "relative_update",
              "max_layer_relative_update", "angular_update_mean", "angular_update_max",
              "r_abs_mean", "r_frac_above_half", "r_abs_max", "momentum_norm")
SHARPNESS_STATS = ("sharpness", "preconditioned_sharpness", "sharpness_threshold")
LAYER_STATS = ("relative_update", "angular_update", "grad_norm")

STEPS_CSV = CsvSchema("steps.csv", (
    Column("step", COUNT), Column("epoch", COUNT), Column("lr", SIZE),
    Column("warmup_factor", FRACTION), Column("loss", SIZE)))
EPOCHS_CSV = CsvSchema("epochs.csv", (
    Column("epoch", COUNT), Column("train_loss", SIZE), Column("train_acc", FRACTION),
    Column("test_loss", SIZE), Column("test_acc", FRACTION),
    Column("test_top5", FRACTION, required=False),  # 0.1.0 wrote no top-5
    Column("val_loss", SIZE, val_only=True), Column("val_acc", FRACTION, val_only=True),
    Column("val_top5", FRACTION, val_only=True),
    Column("seconds", SIZE), Column("images_per_second", SIZE),
    # with --precise-bn: the same evaluations at BatchNorm statistics recomputed at the
    # epoch's weights (train.evaluation.recomputed_batchnorm); the columns above stay
    # the protocol's (the running statistics training kept)
    *(Column(f"{name}{PRECISE}", bound, val_only=name.startswith("val_"), precise_only=True)
      for name, bound in (("test_loss", SIZE), ("test_acc", FRACTION),
                          ("test_top5", FRACTION), ("val_loss", SIZE),
                          ("val_acc", FRACTION), ("val_top5", FRACTION)))))
DIAGNOSTICS_CSV = CsvSchema("diagnostics.csv", (
    Column("step", COUNT), *_numbers(STEP_STATS + SHARPNESS_STATS, ANY)))
LAYERS_CSV = CsvSchema("layers.csv", (
    Column("step", COUNT), Column("layer", None), *_numbers(LAYER_STATS, ANY)),
    one_row_per_key=False)
# a Transformer's instability signals at each log step (diagnostics.LogitProbe): per
# block its attention logits q.k / sqrt(d), then the model's output logits; the largest
# (absolute, for the output) and the root mean square
LOGITS_CSV = CsvSchema("logits.csv", (
    Column("step", COUNT), Column("logits", None), *_numbers(("max", "rms"), ANY)),
    one_row_per_key=False)
SCHEMAS = (STEPS_CSV, EPOCHS_CSV, DIAGNOSTICS_CSV, LAYERS_CSV, LOGITS_CSV)

# every column's bound, by name (a name means one thing in every file); text columns
BOUNDS = {c.name: c.bound for s in SCHEMAS for c in s.columns if c.bound is not None}
TEXT_COLUMNS = {c.name for s in SCHEMAS for c in s.columns if c.bound is None}
