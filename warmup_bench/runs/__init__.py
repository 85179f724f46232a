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
    RunBusy,
    RunDir,
    RunLock,
    check_output_root,
    config_hash,
    find_runs,
    run_name,
)
from .summary import METRICS, Status, Summary

__all__ = ["RunDir", "Logs", "RunLock", "RunBusy", "CheckpointError", "RunFileError", "CsvLog",
           "Bound", "Status", "Summary", "METRICS", "STEP_COLUMNS", "EPOCH_COLUMNS",
           "VAL_COLUMNS", "epoch_columns", "read_csv", "check_output_root", "config_hash",
           "find_runs", "run_name", "CONFIG", "META", "SUMMARY", "STEPS", "EPOCHS", "LOGS",
           "CHECKPOINT"]
