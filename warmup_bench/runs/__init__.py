"""The run folder, the contract between train, sweep and report: `folder.py` names its
files (RunDir), `csvlogs.py` writes and checks its CSV logs, `summary.py` is its
summary.json."""

from .csvlogs import (
    EPOCH_COLUMNS,
    STEP_COLUMNS,
    VAL_COLUMNS,
    Bound,
    CsvLog,
    RunFileError,
    epoch_columns,
    read_csv,
)
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
    check_output_root,
    config_hash,
    find_runs,
    run_name,
)
from .lock import RunBusy, RunLock, lock_held
from .summary import METRICS, Status, Summary
from .tensors import load_tensors, refuse_link

__all__ = ["RunDir", "Logs", "RunLock", "RunBusy", "CheckpointError", "RunFileError", "CsvLog",
           "Bound", "Status", "Summary", "METRICS", "STEP_COLUMNS", "EPOCH_COLUMNS",
           "VAL_COLUMNS", "epoch_columns", "read_csv", "check_output_root", "config_hash",
           "find_runs", "run_name", "CONFIG", "META", "SUMMARY", "STEPS", "EPOCHS", "LOGS",
           "CHECKPOINT", "load_tensors", "refuse_link", "lock_held"]
