"""The run folder, the contract between train, sweep and report: `folder.py` names its
files (RunDir), `schema.py` declares the columns of its CSVs, `csvlogs.py` writes and
checks them, `summary.py` is its summary.json."""

from ..files import check_output_root
from .csvlogs import CsvLog, RunFileError, read_csv
from .folder import (
    CHECKPOINT,
    CONFIG,
    EPOCHS,
    LOGS,
    META,
    STEPS,
    SUMMARY,
    CheckpointError,
    Logs,
    RunDir,
    config_hash,
    find_runs,
    run_name,
)
from .lock import RunBusy, RunLock, lock_held
from .schema import (
    DIAGNOSTICS_CSV,
    EPOCHS_CSV,
    LAYERS_CSV,
    PRECISE,
    STEPS_CSV,
    Bound,
    CsvSchema,
)
from .summary import Status, Summary
from .tensors import load_tensors, refuse_link

__all__ = ["RunDir", "Logs", "RunLock", "RunBusy", "CheckpointError", "RunFileError", "CsvLog",
           "Bound", "PRECISE", "Status", "Summary", "CsvSchema", "STEPS_CSV", "EPOCHS_CSV",
           "DIAGNOSTICS_CSV", "LAYERS_CSV", "read_csv", "check_output_root", "config_hash",
           "find_runs", "run_name", "CONFIG", "META", "SUMMARY", "STEPS", "EPOCHS", "LOGS",
           "CHECKPOINT", "load_tensors", "refuse_link", "lock_held"]
