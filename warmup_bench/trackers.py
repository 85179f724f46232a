"""The trackers researchers watch runs in, mirroring a run's CSV rows: TensorBoard event
files (--tensorboard), Weights & Biases offline (--wandb) and MLflow's local file store
(--mlflow), each an optional package. The CSVs stay the record (and what the report
reads); the trackers get the same rows, at the same moments, each through its own
library: the config, then per logged step the LR, the warmup factor and the loss,
per epoch its metrics, and the diagnostics.

Every scalar is placed at its training iteration: per-step rows at their step, an epoch's
row at the epoch's last iteration. A resumed run redoes the iterations after its last
checkpoint; TensorBoard's purge step drops what the interrupted attempt logged for them,
as the CSVs drop those rows; W&B and MLflow keep both attempts' values (W&B continues the
same offline run, MLflow the same run id).
"""

from __future__ import annotations

import importlib
import math
import os
import time
from pathlib import Path

from .config import ConfigError

SKIPPED = {"step", "epoch"}  # the x axis, not a series


def check_available(tracker: str = "tensorboard") -> None:
    """ConfigError when the optional package of `tracker` is missing."""
    module = {"tensorboard": "torch.utils.tensorboard", "wandb": "wandb",
              "mlflow": "mlflow"}[tracker]
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"--{tracker} needs the {tracker} package: pip install "
                          f"'warmup-bench[{tracker}]'.") from None


def numbers(row: dict) -> dict[str, float]:
    """The row's finite numbers, less its x axis (step, epoch): what a tracker logs."""
    return {key: float(value) for key, value in row.items()
            if key not in SKIPPED and not isinstance(value, bool)
            and isinstance(value, (int, float)) and math.isfinite(value)}


class Mirror:
    """A tracker fed a run's rows: train/* per logged step, epoch/* per epoch (at its last
    iteration), diagnostics/* per probed step. Subclasses log one dict at one step."""

    def __init__(self, iters_per_epoch: int):
        self.iters_per_epoch = iters_per_epoch

    def log(self, values: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def group(self, name: str, row: dict, step: int) -> None:
        values = numbers(row)
        if values:
            self.log({f"{name}/{key}": value for key, value in values.items()}, step)

    def steps(self, row: dict) -> None:
        self.group("train", row, row["step"])

    def epochs(self, row: dict) -> None:
        self.group("epoch", row, row["epoch"] * self.iters_per_epoch)

    def diagnostics(self, row: dict) -> None:
        self.group("diagnostics", row, row["step"])

    def close(self) -> None:
        pass


class TensorBoardMirror(Mirror):
    """TensorBoard event files in the run folder's tensorboard/, by the tensorboard
    package's writer; `first_step`: the iteration this attempt starts at (what a resumed
    run logged from there on is purged)."""

    def __init__(self, folder: Path, first_step: int, iters_per_epoch: int):
        super().__init__(iters_per_epoch)
        # RunOptions.check has checked the package is there, before the run started
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder), purge_step=first_step if first_step > 1
                                    else None, flush_secs=30)

    def log(self, values: dict[str, float], step: int) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbMirror(Mirror):
    """Weights & Biases in offline mode: the run's W&B files in its folder's wandb/
    (`wandb sync RUN/wandb/offline-run-*` uploads them), the config as the run's config,
    the run folder's name as its name and id (a resumed run continues it)."""

    def __init__(self, folder: Path, name: str, config: dict, iters_per_epoch: int):
        super().__init__(iters_per_epoch)
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        folder.mkdir(exist_ok=True)
        # its id: the run name's config hash, so that a resumed run continues it
        self.run = wandb.init(mode="offline", dir=str(folder), project="warmup-bench",
                              name=name, id=name.rsplit("-", 1)[-1], config=config,
                              resume="allow",
                              reinit="create_new", settings=wandb.Settings(
                                  console="off", x_disable_stats=True, x_disable_meta=True))

    def log(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class MlflowMirror(Mirror):
    """MLflow's local file store (`mlflow ui --backend-store-uri file:STORE` shows it):
    one experiment per task, one MLflow run per run folder (its name as the run's name,
    its settings as parameters; a resumed run continues the same MLflow run)."""

    def __init__(self, store: Path, name: str, config: dict, iters_per_epoch: int):
        super().__init__(iters_per_epoch)
        # the file store is what --mlflow promises (no server, no database); MLflow 3
        # asks for this opt-in to keep it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=store.absolute().as_uri())
        task = str(config.get("task", "warmup-bench"))
        experiment = self.client.get_experiment_by_name(task)
        if experiment is None:
            try:
                experiment_id = self.client.create_experiment(task)
            except Exception:  # another process created it meanwhile
                experiment_id = self.client.get_experiment_by_name(task).experiment_id
        else:
            experiment_id = experiment.experiment_id
        found = self.client.search_runs([experiment_id], f"tags.run_folder = '{name}'",
                                        max_results=1)
        if found:
            self.run_id = found[0].info.run_id
        else:
            run = self.client.create_run(experiment_id, run_name=name,
                                         tags={"run_folder": name})
            self.run_id = run.info.run_id
            for key, value in sorted(config.items()):
                self.client.log_param(self.run_id, key, value)

    def log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(1000 * time.time())
        self.client.log_batch(self.run_id, metrics=[
            Metric(key.replace("/", "."), value, stamp, step) for key, value in values.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Mirrors(Mirror):
    """Several trackers as one: each logged dict goes to each."""

    def __init__(self, mirrors: list[Mirror], iters_per_epoch: int):
        super().__init__(iters_per_epoch)
        self.mirrors = mirrors

    def log(self, values: dict[str, float], step: int) -> None:
        for mirror in self.mirrors:
            mirror.log(values, step)

    def close(self) -> None:
        for mirror in self.mirrors:
            mirror.close()


def start(tracker: str, build, *args) -> Mirror:
    """`build(*args)`, a tracker's mirror; ConfigError, one line, when its library
    cannot start it (a store it cannot write, a version that refuses the options)."""
    try:
        return build(*args)
    except Exception as error:  # the library's own errors: any type
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise ConfigError(f"--{tracker} could not start ({type(error).__name__}: "
                          f"{first}).") from None
