"""The run folder: the contract between train, sweep and report. This module is the only
place that names a run's files; everything else goes through `RunDir`.

<out>/<task>/<run-name>/ holds:

  config.json    exactly the resolved TrainConfig (what identifies the run, seed included)
  meta.json      bookkeeping: versions, device, threads, start time, resume point, ...
  summary.json   a `Summary`: status, best / final accuracy, epochs done, wall time, error
  steps.csv      every log interval               (columns: schema.STEPS_CSV)
  epochs.csv     once per epoch                   (schema.EPOCHS_CSV)
  diagnostics.csv  every log interval, with --diagnostics (the default)
                                                  (schema.DIAGNOSTICS_CSV)
  layers.csv     one row per weight tensor, every LAYER_EVERY log steps
                                                  (schema.LAYERS_CSV)
  checkpoint.pt  the latest state for --resume, bound to its config by a hash
  model.pt       the best epoch's weights (--save-model)
  lock           an OS file lock held by the one process writing the run (and its pid)

JSON files and checkpoints are replaced atomically; CSVs grow a whole row at a time, so a
killed process never leaves a file that a reader would misparse. Nothing is read or
written through a symbolic link: a run folder that is a link, or holds one under a run
file's name, is damaged (the link could lead a write to any file the user can write).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import ADDED_SETTINGS, SETTINGS, TrainConfig
from ..errors import UserError
from ..files import (
    TEMP_SUFFIX,
    atomic_path,
    remove_temporaries,
    write_json_atomic,
)
from ..trackers import Mirrors, MlflowMirror, TensorBoardMirror, WandbMirror
from ..trackers import start as start_tracker
from .csvlogs import CsvLog, RunFileError, count_rows, read_csv, truncate_rows
from .lock import LOCK, RunLock
from .schema import DIAGNOSTICS_CSV, EPOCHS_CSV, LAYERS_CSV, LOGITS_CSV, STEPS_CSV, CsvSchema
from .summary import Summary
from .tensors import load_tensors, refuse_link, save_tensors

CONFIG, META, SUMMARY = "config.json", "meta.json", "summary.json"
STEPS, EPOCHS = STEPS_CSV.file, EPOCHS_CSV.file
DIAGNOSTICS, LAYERS, LOGITS = DIAGNOSTICS_CSV.file, LAYERS_CSV.file, LOGITS_CSV.file
TENSORBOARD = "tensorboard"  # a folder of event files (with --tensorboard)
WANDB = "wandb"  # W&B's offline run files (with --wandb)
MLRUNS = "mlruns"  # MLflow's file store, in the output root beside the tasks (--mlflow)
LOGS = {"steps": STEPS, "epochs": EPOCHS, "diagnostics": DIAGNOSTICS, "layers": LAYERS,
        "logits": LOGITS}
CHECKPOINT, MODEL = "checkpoint.pt", "model.pt"
# a pack member's checkpoint of the epoch before, kept while the pack commits an epoch;
# when there was none (the pack commits its first epoch), an empty marker says so
PREVIOUS_CHECKPOINT, NO_PREVIOUS_CHECKPOINT = "checkpoint.prev.pt", "checkpoint.prev.none"
PREDICTIONS, ONNX = "predictions.png", "model.onnx"  # made on request by predict / export
CHECKPOINT_FORMAT = 1  # bump when the checkpoint's keys change
CHECKPOINT_KEYS = {"format", "config_hash", "model", "optimizer", "scheduler", "warmup", "rng",
                   "epoch", "wall_seconds", "results", "rows"}


class CheckpointError(UserError):
    """A checkpoint that cannot be resumed: unreadable, or not this run's."""


def run_name(cfg: TrainConfig) -> str:
    """Readable prefix plus a hash of the whole config: different configs never collide."""
    period = f"-p{cfg.warmup_period}" if cfg.warmup_period is not None else ""
    prefix = (f"{cfg.opt}-{cfg.warmup}{period}-{cfg.schedule}-lr{cfg.lr:g}-b{cfg.beta2:g}"
              f"-s{cfg.seed}")
    return f"{prefix}-{config_hash(cfg)[:8]}"


def config_hash(cfg: TrainConfig) -> str:
    """SHA-256 of the config's JSON, leaving out settings added after 0.1.0 while they hold
    their default (so a folder's name never changes when a setting is added)."""
    values = {k: v for k, v in cfg.to_dict().items()
              if k not in ADDED_SETTINGS or v != ADDED_SETTINGS[k]}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path):
    if path.is_symlink():  # not the run's own file (RunDir.check_files names it)
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class RunDir:
    """One run's folder and every file in it."""

    path: Path

    @classmethod
    def of(cls, out: Path, cfg: TrainConfig) -> RunDir:
        return cls(Path(out) / cfg.task / run_name(cfg))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def model_path(self) -> Path:
        return self.path / MODEL

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX

    @property
    def steps_path(self) -> Path:
        return self.path / STEPS

    @property
    def epochs_path(self) -> Path:
        return self.path / EPOCHS

    def has_files(self) -> bool:
        """Whether the folder holds anything of a run (its lock and stale temporaries
        aside)."""
        return self.path.is_dir() and any(
            p.name != LOCK and not p.name.endswith(TEMP_SUFFIX) for p in self.path.iterdir())

    def check_files(self) -> None:
        """RunFileError when the folder or a name of the run's files is a symbolic link, a
        log (appended to in place) a hard link, or a name holds something else (a folder
        where steps.csv should be): the folder is damaged, and nothing in it is touched."""
        refuse_link(self.path)
        for name in (*LOGS.values(), CONFIG, META, SUMMARY, CHECKPOINT, PREVIOUS_CHECKPOINT,
                     NO_PREVIOUS_CHECKPOINT, MODEL, LOCK, PREDICTIONS, ONNX, TENSORBOARD):
            path = self.path / name
            refuse_link(path)
            if path.exists() and path.is_dir() != (name == TENSORBOARD):
                kind = "a folder" if name == TENSORBOARD else "a file"
                raise RunFileError(f"{path} is not {kind}: the run folder is damaged; delete "
                                   "it to start over.")
            if name in LOGS.values() and path.exists() and path.stat().st_nlink > 1:
                raise RunFileError(f"{path} is a hard link to another file: the run folder is "
                                   "damaged; delete it to start over.")

    def lock(self) -> RunLock:
        """Takes the run's exclusive lock (creating the folder); RunBusy if another live
        process holds it, RunFileError if the folder or its lock is not what it should be
        (a symbolic link, a folder). The OS releases the lock when its holder dies,
        however it dies."""
        refuse_link(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path / LOCK)

    # ---- lifecycle (train) -----------------------------------------------------------

    def start_fresh(self) -> None:
        """Removes what an earlier attempt of this run left behind (under the lock)."""
        remove_temporaries(self.path)
        for name in (*LOGS.values(), CHECKPOINT, PREVIOUS_CHECKPOINT, NO_PREVIOUS_CHECKPOINT,
                     MODEL):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)
        shutil.rmtree(self.path / WANDB, ignore_errors=True)

    def rewind(self, rows: dict[str, int]) -> None:
        """Back to a checkpoint: drops the CSV rows logged after it (they will be redone)."""
        remove_temporaries(self.path)
        for name, file in LOGS.items():
            if name in rows:  # a checkpoint of an older version counts fewer logs
                truncate_rows(self.path / file, rows[name])

    def open_logs(self, has_val: bool, diagnostics: bool, tensorboard: bool = False,
                  first_step: int = 1, iters_per_epoch: int = 1, logits: bool = False,
                  trackers: tuple[str, ...] = (), config: dict | None = None,
                  precise_bn: bool = False) -> Logs:
        """The run's CSV logs, opened for appending; the diagnostics ones only when
        `diagnostics` (their rows are left as they are otherwise), logits.csv only for a
        model with attention (`logits`). With `tensorboard`, every row is also written as
        TensorBoard scalars (`first_step`: the iteration this attempt starts at); with
        "wandb" or "mlflow" in `trackers`, also to W&B offline (the folder's wandb/) or to
        MLflow's file store (mlruns/ beside the tasks' folders), with `config`. With
        `precise_bn`, epochs.csv has the *_pbn columns too."""
        mirrors = [TensorBoardMirror(self.path / TENSORBOARD, first_step, iters_per_epoch)] \
            if tensorboard else []
        if "wandb" in trackers:
            mirrors.append(start_tracker("wandb", WandbMirror, self.path / WANDB, self.name,
                                         config or {}, iters_per_epoch))
        if "mlflow" in trackers:
            mirrors.append(start_tracker("mlflow", MlflowMirror,
                                         self.path.parent.parent / MLRUNS, self.name,
                                         config or {}, iters_per_epoch))
        board = Mirrors(mirrors, iters_per_epoch) if mirrors else None

        def log(schema: CsvSchema, mirror=None) -> CsvLog:
            return CsvLog(self.path / schema.file, schema.names(has_val, precise_bn), mirror)

        def extra(schema: CsvSchema, mirror=None) -> CsvLog | int:
            return log(schema, mirror) if diagnostics else count_rows(self.path / schema.file)

        return Logs(log(STEPS_CSV, board and board.steps), log(EPOCHS_CSV, board and board.epochs),
                    extra(DIAGNOSTICS_CSV, board and board.diagnostics), extra(LAYERS_CSV),
                    extra(LOGITS_CSV) if logits else count_rows(self.path / LOGITS), board)

    def write_config(self, cfg: TrainConfig) -> None:
        write_json_atomic(self.path / CONFIG, cfg.to_dict())

    def write_meta(self, meta: dict) -> None:
        write_json_atomic(self.path / META, meta)

    def write_summary(self, summary: Summary) -> None:
        write_json_atomic(self.path / SUMMARY, summary.to_dict())

    def has_checkpoint(self) -> bool:
        return (self.path / CHECKPOINT).exists()

    def save_checkpoint(self, cfg: TrainConfig, state: dict, keep_previous: bool = False
                        ) -> None:
        """Saves `state` stamped with the format and the config it belongs to. With
        `keep_previous` (a pack member) the checkpoint it replaces stays, as
        checkpoint.prev.pt (or, where there was none, the marker checkpoint.prev.none),
        until `drop_previous_checkpoint`: a pack killed while its members commit an epoch
        resumes every member from the same epoch."""
        if keep_previous:
            if (self.path / CHECKPOINT).exists():
                os.replace(self.path / CHECKPOINT, self.path / PREVIOUS_CHECKPOINT)
            else:
                with atomic_path(self.path / NO_PREVIOUS_CHECKPOINT) as tmp:
                    tmp.touch()
        save_tensors(self.path / CHECKPOINT, {"format": CHECKPOINT_FORMAT,
                                             "config_hash": config_hash(cfg), **state})

    def drop_previous_checkpoint(self) -> None:
        (self.path / PREVIOUS_CHECKPOINT).unlink(missing_ok=True)
        (self.path / NO_PREVIOUS_CHECKPOINT).unlink(missing_ok=True)

    def has_previous_checkpoint(self) -> bool:
        """A kept previous checkpoint, or the marker that there was none."""
        return (self.path / PREVIOUS_CHECKPOINT).is_file() or \
            (self.path / NO_PREVIOUS_CHECKPOINT).is_file()

    def previous_was_none(self) -> bool:
        """Whether the kept "previous checkpoint" is the marker that there was none."""
        return (self.path / NO_PREVIOUS_CHECKPOINT).is_file() and \
            not (self.path / PREVIOUS_CHECKPOINT).is_file()

    def roll_back_checkpoint(self) -> None:
        """The state of the epoch before becomes the run's (a pack's partial commit): its
        kept checkpoint, or no checkpoint at all where the marker says there was none."""
        if (self.path / PREVIOUS_CHECKPOINT).is_file():
            os.replace(self.path / PREVIOUS_CHECKPOINT, self.path / CHECKPOINT)
        else:
            (self.path / CHECKPOINT).unlink(missing_ok=True)
        (self.path / NO_PREVIOUS_CHECKPOINT).unlink(missing_ok=True)

    def load_checkpoint(self, cfg: TrainConfig, previous: bool = False) -> dict:
        """The checkpoint (`previous`: a pack member's checkpoint.prev.pt), verified to be
        this config's and consistent with the folder's logs; CheckpointError (naming why)
        otherwise. Reads only. Its tensors are on the CPU: each consumer places its own
        (optimizer step counters stay where torch keeps them, RNG states on the CPU)."""
        path = self.path / (PREVIOUS_CHECKPOINT if previous else CHECKPOINT)
        try:
            state = load_tensors(path)
        except RunFileError as error:
            raise CheckpointError(str(error)) from None
        if not isinstance(state, dict) or not CHECKPOINT_KEYS <= set(state):
            raise CheckpointError(f"{path} is not a warmup-bench checkpoint of format "
                                  f"{CHECKPOINT_FORMAT} (keys missing); delete the folder to "
                                  "start over.")
        if state["format"] != CHECKPOINT_FORMAT or state["config_hash"] != config_hash(cfg):
            raise CheckpointError(f"{path} belongs to another run (its config hash differs "
                                  "from this folder's); refusing to resume from it.")
        epoch, rows = state["epoch"], state["rows"]
        logged = {name: count_rows(self.path / file) for name, file in LOGS.items()}
        if not (isinstance(epoch, int) and 0 <= epoch <= cfg.epochs and isinstance(rows, dict)
                and all(isinstance(rows.get(k), int) and 0 <= rows[k] <= logged[k]
                        for k in logged) and rows["epochs"] == epoch):
            raise CheckpointError(f"{path} says epoch {epoch!r} with rows {rows!r}, which this "
                                  f"folder's logs ({logged}) cannot have produced.")
        return state

    def save_model(self, state_dict: dict) -> None:
        save_tensors(self.path / MODEL, state_dict)

    # ---- reading back (report, sweep) -----------------------------------------------

    def read_summary(self) -> Summary | None:
        try:
            return self.load_summary()
        except RunFileError:
            return None

    def load_summary(self) -> Summary:
        """The summary, every value checked; RunFileError saying why it cannot be used (a
        run folder or summary that is a link is not the run's own)."""
        refuse_link(self.path)
        refuse_link(self.path / SUMMARY)
        path = self.path / SUMMARY
        values = _read_json(path)
        if values is None:
            raise RunFileError(f"no readable {SUMMARY} (a partial run)")
        if not isinstance(values, dict):
            raise RunFileError(f"{SUMMARY} is damaged (not a JSON object)")
        try:
            return Summary.from_dict(values)
        except (TypeError, ValueError, AttributeError) as error:
            raise RunFileError(f"{SUMMARY} is damaged ({error})") from None

    def read_config(self) -> TrainConfig | None:
        """The run's TrainConfig. Folders written before meta.json existed kept bookkeeping
        in config.json too: only the settings are taken from it."""
        values = _read_json(self.path / CONFIG)
        if not isinstance(values, dict):
            return None
        try:
            return TrainConfig.from_dict({k: v for k, v in values.items() if k in SETTINGS})
        except (TypeError, ValueError):
            return None

    def read_meta(self) -> dict:
        """meta.json, or the bookkeeping an older config.json held."""
        meta = _read_json(self.path / META)
        if isinstance(meta, dict):
            return meta
        legacy = _read_json(self.path / CONFIG)
        return {k: v for k, v in legacy.items() if k not in SETTINGS} \
            if isinstance(legacy, dict) else {}

    def read_log(self, schema: CsvSchema) -> pd.DataFrame:
        """One of the run's CSVs, every value checked (RunFileError otherwise)."""
        return read_csv(self.path / schema.file, schema.required, schema.one_row_per_key)

    def read_steps(self) -> pd.DataFrame:
        return self.read_log(STEPS_CSV)

    def read_epochs(self) -> pd.DataFrame:
        return self.read_log(EPOCHS_CSV)

    def read_diagnostics(self) -> pd.DataFrame:
        return self.read_log(DIAGNOSTICS_CSV)

    def read_layers(self) -> pd.DataFrame:
        return self.read_log(LAYERS_CSV)


@dataclass
class Logs:
    """A run's CSV logs; a diagnostics log that is not being written is its row count."""

    steps: CsvLog
    epochs: CsvLog
    diagnostics: CsvLog | int
    layers: CsvLog | int
    logits: CsvLog | int = 0
    trackers: object = None  # trackers.Mirrors, with --tensorboard, --wandb or --mlflow

    def rows(self) -> dict[str, int]:
        """Data rows in each file (what a checkpoint records, and a resume rewinds to)."""
        logs = {name: getattr(self, name) for name in LOGS}
        return {name: log.rows if isinstance(log, CsvLog) else log for name, log in logs.items()}

    def close(self) -> None:
        for name in LOGS:
            log = getattr(self, name)
            if isinstance(log, CsvLog):
                log.close()
        if self.trackers is not None:
            self.trackers.close()


def find_runs(root: Path, on_link: Callable[[Path], None] | None = None) -> Iterator[RunDir]:
    """Every folder under `root` that holds a run's config, in a stable order. Links are
    not followed: one to a run folder (or a folder of them) is passed to `on_link`."""
    configs = []
    for folder, subfolders, files in os.walk(root):  # does not descend into links
        here = Path(folder)
        for name in subfolders:
            link = here / name
            if on_link is not None and link.is_symlink() and (
                    (link / CONFIG).exists() or any(link.glob(f"*/{CONFIG}"))):
                on_link(link)
        if CONFIG in files:
            configs.append(here / CONFIG)
    for config_path in sorted(configs):
        yield RunDir(config_path.parent)
