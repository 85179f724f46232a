"""The trackers beside TensorBoard: Weights & Biases (offline) and MLflow (a local file
store), each read back with that library's own means: MLflow's client, and W&B's own
record schema (its protobuf Record) over the offline run's transaction log. What each
holds must be the CSVs' numbers: the config, per logged step the LR, the warmup factor
and the loss, per epoch its metrics."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clirun import invoke

wandb = pytest.importorskip("wandb", reason="pip install 'warmup-bench[wandb]'")
pytest.importorskip("mlflow", reason="pip install 'warmup-bench[mlflow]'")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tracked")
    done = invoke("train", "--task", "digits", "--epochs", "2", "--wandb", "--mlflow",
                  "--no-progress", "--out", out)
    assert done.exit_code == 0, done.output
    return out


def only_run(out: Path) -> Path:
    (run,) = (out / "digits").iterdir()
    return run


def wandb_records(path: Path) -> list:
    """The records of an offline W&B run file: a 7-byte header (":W&B", magic, version),
    then a log of 32 KiB blocks, each record a 7-byte header (CRC, length, kind: full,
    first, middle, last) and its bytes; each whole record one protobuf Record."""
    from wandb.proto.wandb_internal_pb2 import Record

    data, block, records, pending = path.read_bytes(), 32768, [], b""
    assert data[:4] == b":W&B"
    position = 7
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:  # a block's tail too short for a header is padding
            position += left
            continue
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        if length == 0 and kind == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # full, or the last part
            record = Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


@pytest.mark.slow
def test_wandb_offline_holds_the_config_and_the_csvs_numbers(tracked) -> None:
    run = only_run(tracked)
    (log,) = (run / "wandb").glob("wandb/offline-run-*/run-*.wandb")
    records = wandb_records(log)
    config = {}
    history = []
    for record in records:
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config |= {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "config":
            config |= {i.key: json.loads(i.value_json) for i in record.config.update}
        elif kind == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json)
                            for i in record.history.item})
    assert config["lr"] == 0.01 and config["warmup"] == "untuned-linear"
    assert config["beta2"] == 0.99 and config["task"] == "digits"
    steps, epochs = pd.read_csv(run / "steps.csv"), pd.read_csv(run / "epochs.csv")
    logged = [h for h in history if "train/lr" in h]
    assert [h["_step"] for h in logged] == steps["step"].tolist()
    assert [h["train/lr"] for h in logged] == steps["lr"].tolist()
    assert [h["train/warmup_factor"] for h in logged] == steps["warmup_factor"].tolist()
    assert np.allclose([h["train/loss"] for h in logged], steps["loss"], rtol=1e-12)
    iters = json.loads((run / "meta.json").read_text())["iterations_per_epoch"]
    at_epochs = [h for h in history if "epoch/test_acc" in h]
    assert [h["_step"] for h in at_epochs] == [iters * e for e in epochs["epoch"]]
    assert [h["epoch/test_acc"] for h in at_epochs] == epochs["test_acc"].tolist()


@pytest.mark.slow
def test_mlflow_file_store_holds_the_config_and_the_csvs_numbers(tracked) -> None:
    from mlflow.tracking import MlflowClient

    run = only_run(tracked)
    client = MlflowClient(tracking_uri=(tracked / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "digits"]
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.run_name == run.name and found.info.status == "FINISHED"
    assert found.data.params["lr"] == "0.01" and found.data.params["warmup"] == "untuned-linear"
    steps, epochs = pd.read_csv(run / "steps.csv"), pd.read_csv(run / "epochs.csv")
    for key, column in (("train.lr", "lr"), ("train.warmup_factor", "warmup_factor"),
                        ("train.loss", "loss")):
        history = client.get_metric_history(found.info.run_id, key)
        assert [m.step for m in history] == steps["step"].tolist()
        assert np.allclose([m.value for m in history], steps[column], rtol=1e-12), key
    iters = json.loads((run / "meta.json").read_text())["iterations_per_epoch"]
    accuracy = client.get_metric_history(found.info.run_id, "epoch.test_acc")
    assert [m.step for m in accuracy] == [iters * e for e in epochs["epoch"]]
    assert [m.value for m in accuracy] == epochs["test_acc"].tolist()


@pytest.mark.parametrize("tracker", ["wandb", "mlflow"])
def test_a_missing_tracker_is_one_line_before_any_file(tmp_path, monkeypatch, tracker) -> None:
    monkeypatch.setitem(sys.modules, tracker, None)  # its import fails
    result = invoke("train", "--task", "digits", f"--{tracker}", "--out", tmp_path / "r")
    assert result.exit_code == 2 and f"pip install 'warmup-bench[{tracker}]'" in result.output
    assert not (tmp_path / "r").exists()
