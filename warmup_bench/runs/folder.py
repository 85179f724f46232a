"""The run folder: the contract between train, sweep and report. This module is the only
place that names a run's files; everything else goes through `RunDir`.

<out>/<task>/<run-name>/ holds:

  config.json    exactly the resolved TrainConfig (what identifies the run, seed included)
  meta.json      bookkeeping: versions, device, threads, start time, resume point, ...
  summary.json   a `Summary`: status, best / final accuracy, epochs done, wall time, error
  steps.csv      STEP_COLUMNS every log interval
  epochs.csv     epoch_columns() once per epoch
  diagnostics.csv  DIAGNOSTIC_COLUMNS every log interval (--diagnostics, the default)
  layers.csv     LAYER_COLUMNS, one row per weight tensor, every LAYER_EVERY log steps
  checkpoint.pt  the latest state for --resume, bound to its config by a hash
  model.pt       the best epoch's weights (--save-model)
  lock           an OS file lock held by the one process writing the run (and its pid)

JSON files and checkpoints are replaced atomically; CSVs grow a whole row at a time, so a
killed process never leaves a file that a reader would misparse.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..config import ADDED_SETTINGS, SETTINGS, ConfigError, TrainConfig
from ..errors import UserError
from ..files import (
    TEMP_SUFFIX,
    OutputError,
    atomic_path,
    remove_temporaries,
    writable_ancestor,
    write_json_atomic,
)
from .csvlogs import (
    EPOCH_COLUMNS_SINCE_0_1,
    STEP_COLUMNS,
    CsvLog,
    RunFileError,
    count_rows,
    epoch_columns,
    read_csv,
    truncate_rows,
)
from .summary import Summary

CONFIG, META, SUMMARY = "config.json", "meta.json", "summary.json"
STEPS, EPOCHS = "steps.csv", "epochs.csv"
DIAGNOSTICS, LAYERS = "diagnostics.csv", "layers.csv"
TENSORBOARD = "tensorboard"  # a folder of event files (with --tensorboard)
LOGS = {"steps": STEPS, "epochs": EPOCHS, "diagnostics": DIAGNOSTICS, "layers": LAYERS}
CHECKPOINT, MODEL, LOCK = "checkpoint.pt", "model.pt", "lock"
# a pack member's checkpoint of the epoch before, kept while the pack commits an epoch
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"
PREDICTIONS, ONNX = "predictions.png", "model.onnx"  # made on request by predict / export
CHECKPOINT_FORMAT = 1  # bump when the checkpoint's keys change
CHECKPOINT_KEYS = {"format", "config_hash", "model", "optimizer", "scheduler", "warmup", "rng",
                   "epoch", "wall_seconds", "results", "rows"}


class RunBusy(UserError):
    """Another live process holds the run folder's lock."""


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
        """RunFileError when a name of the run's files holds something else (a folder
        where steps.csv should be): the folder is damaged, and nothing in it is touched."""
        for name in (*LOGS.values(), CONFIG, META, SUMMARY, CHECKPOINT, PREVIOUS_CHECKPOINT,
                     MODEL):
            path = self.path / name
            if path.exists() and not path.is_file():
                raise RunFileError(f"{path} is not a file: the run folder is damaged; delete "
                                   "it to start over.")

    def lock(self) -> RunLock:
        """Takes the run's exclusive lock (creating the folder); RunBusy if another live
        process holds it. The OS releases it when its holder dies, however it dies."""
        self.path.mkdir(parents=True, exist_ok=True)
        return RunLock(self.path / LOCK)

    # ---- lifecycle (train) -----------------------------------------------------------

    def start_fresh(self) -> None:
        """Removes what an earlier attempt of this run left behind (under the lock)."""
        remove_temporaries(self.path)
        for name in (*LOGS.values(), CHECKPOINT, PREVIOUS_CHECKPOINT, MODEL):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / TENSORBOARD, ignore_errors=True)

    def rewind(self, rows: dict[str, int]) -> None:
        """Back to a checkpoint: drops the CSV rows logged after it (they will be redone)."""
        remove_temporaries(self.path)
        for name, file in LOGS.items():
            truncate_rows(self.path / file, rows[name])

    def open_logs(self, has_val: bool, diagnostics: bool, tensorboard: bool = False,
                  first_step: int = 1, iters_per_epoch: int = 1) -> Logs:
        """The run's CSV logs, opened for appending; the diagnostics ones only when
        `diagnostics` (their rows are left as they are otherwise). With `tensorboard`,
        every row is also written as TensorBoard scalars (`first_step`: the iteration
        this attempt starts at)."""
        from ..diagnostics import DIAGNOSTIC_COLUMNS, LAYER_COLUMNS
        from ..trackers import TensorBoardMirror

        board = TensorBoardMirror(self.path / TENSORBOARD, first_step, iters_per_epoch) \
            if tensorboard else None

        def extra(file: str, columns: list[str], mirror=None) -> CsvLog | int:
            return CsvLog(self.path / file, columns, mirror) if diagnostics else \
                count_rows(self.path / file)

        return Logs(CsvLog(self.path / STEPS, STEP_COLUMNS, board and board.steps),
                    CsvLog(self.path / EPOCHS, epoch_columns(has_val), board and board.epochs),
                    extra(DIAGNOSTICS, DIAGNOSTIC_COLUMNS, board and board.diagnostics),
                    extra(LAYERS, LAYER_COLUMNS), board)

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
        checkpoint.prev.pt, until `drop_previous_checkpoint`: a pack killed while its
        members commit an epoch resumes every member from the same epoch."""
        if keep_previous and (self.path / CHECKPOINT).exists():
            os.replace(self.path / CHECKPOINT, self.path / PREVIOUS_CHECKPOINT)
        _save_torch(self.path / CHECKPOINT, {"format": CHECKPOINT_FORMAT,
                                             "config_hash": config_hash(cfg), **state})

    def drop_previous_checkpoint(self) -> None:
        (self.path / PREVIOUS_CHECKPOINT).unlink(missing_ok=True)

    def has_previous_checkpoint(self) -> bool:
        return (self.path / PREVIOUS_CHECKPOINT).is_file()

    def roll_back_checkpoint(self) -> None:
        """The checkpoint of the epoch before becomes the run's (a pack's partial commit)."""
        os.replace(self.path / PREVIOUS_CHECKPOINT, self.path / CHECKPOINT)

    def load_checkpoint(self, cfg: TrainConfig, map_location, previous: bool = False) -> dict:
        """The checkpoint (`previous`: a pack member's checkpoint.prev.pt), verified to be
        this config's and consistent with the folder's logs; CheckpointError (naming why)
        otherwise. Reads only: changes nothing."""
        import torch

        path = self.path / (PREVIOUS_CHECKPOINT if previous else CHECKPOINT)
        try:
            state = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as error:  # torch raises many types, with multi-paragraph texts
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise CheckpointError(f"{path} is unreadable or corrupt "
                                  f"({type(error).__name__}: {first[:160]}).") from None
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
        _save_torch(self.path / MODEL, state_dict)

    # ---- reading back (report, sweep) -----------------------------------------------

    def read_summary(self) -> Summary | None:
        try:
            return self.load_summary()
        except RunFileError:
            return None

    def load_summary(self) -> Summary:
        """The summary, every value checked; RunFileError saying why it cannot be used."""
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

    def read_steps(self) -> pd.DataFrame:
        return read_csv(self.path / STEPS, STEP_COLUMNS)

    def read_epochs(self) -> pd.DataFrame:
        return read_csv(self.path / EPOCHS, EPOCH_COLUMNS_SINCE_0_1)

    def read_diagnostics(self) -> pd.DataFrame:
        return read_csv(self.path / DIAGNOSTICS, ["step"])

    def read_layers(self) -> pd.DataFrame:
        return read_csv(self.path / LAYERS, ["step", "layer"], one_row_per_key=False)


def _save_torch(path: Path, state: dict) -> None:
    """torch.save, atomically; a failed write (torch reports a full disk as RuntimeError)
    is an OSError naming the file, and the previous file stays as it was."""
    import torch

    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise OSError(f"cannot write {path} ({first})") from None


@dataclass
class Logs:
    """A run's CSV logs; a diagnostics log that is not being written is its row count."""

    steps: CsvLog
    epochs: CsvLog
    diagnostics: CsvLog | int
    layers: CsvLog | int
    tensorboard: object = None  # a trackers.TensorBoardMirror, with --tensorboard

    def rows(self) -> dict[str, int]:
        """Data rows in each file (what a checkpoint records, and a resume rewinds to)."""
        logs = {name: getattr(self, name) for name in LOGS}
        return {name: log.rows if isinstance(log, CsvLog) else log for name, log in logs.items()}

    def close(self) -> None:
        for name in LOGS:
            log = getattr(self, name)
            if isinstance(log, CsvLog):
                log.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class RunLock:
    """An exclusive flock on the run's lock file, with the holder's pid written in it."""

    def __init__(self, path: Path):
        import fcntl

        self.handle = path.open("a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "unknown"
            self.handle.close()
            raise RunBusy(f"{path.parent} is being written by another process (pid {holder}); "
                          "wait for it to finish, or stop it first.") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"{os.getpid()}\n")
        self.handle.flush()

    def release(self) -> None:
        if not self.handle.closed:
            self.handle.close()  # closing the descriptor releases the flock


def check_output_root(out: Path) -> None:
    """Fails early (ConfigError) for an output root that cannot hold run folders: a file,
    a folder nothing can be created in, or a path too long for the file system."""
    out = Path(out)
    too_long = ConfigError(f"--out {str(out)[:60]}...: {os.strerror(errno.ENAMETOOLONG)}.")
    # a run folder adds <task>/<run-name> (about 100 characters) and file names below it
    if any(len(part.encode()) > 255 for part in out.parts) or \
            len(str(out.absolute()).encode()) + 160 > 4096:
        raise too_long
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder.")
    try:
        writable_ancestor(out, "--out")
    except OutputError as error:
        raise ConfigError(str(error)) from None


def find_runs(root: Path) -> Iterator[RunDir]:
    """Every folder under `root` that holds a run's config, in a stable order."""
    for config_path in sorted(Path(root).rglob(CONFIG)):
        yield RunDir(config_path.parent)
