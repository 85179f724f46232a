"""Integrity, round two: no code from a grid file unless the user consents; failures in
plugin code, checkpoint writes and output paths end in one line; run folders with damaged
numbers are skipped, and what is read from files reaches the terminal escaped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clirun import invoke
from test_bad_inputs import assert_one_line_error, snapshot

from warmup_bench.data.verify import sha256_of

TOUCHING_PLUGIN = "from pathlib import Path\nPath({marker!r}).touch()\n"
GRID = 'title = "g"\ntask = "digits"\nplugins = [{plugins}]\n[fixed]\nepochs = 1\n' \
       "train_samples = 64\n"


def grid_with_plugin(folder: Path, marker: Path, plugin_path: str = "touch.py",
                     plugin_at: Path | None = None) -> tuple[Path, Path]:
    """A grid (in `folder`) listing a plugin that would create `marker` if it ran."""
    folder.mkdir(parents=True, exist_ok=True)
    plugin = plugin_at or folder / plugin_path
    plugin.parent.mkdir(parents=True, exist_ok=True)
    plugin.write_text(TOUCHING_PLUGIN.format(marker=str(marker)))
    grid = folder / "grid.toml"
    grid.write_text(GRID.format(plugins=json.dumps(plugin_path)))
    return grid, plugin


GRID_COMMANDS = {
    "sweep --dry-run": ["sweep", "{grid}", "--dry-run", "--out", "{out}"],
    "sweep": ["sweep", "{grid}", "--out", "{out}"],
    "report --experiment": ["report", "{out}", "--experiment", "{grid}"],
}


@pytest.mark.parametrize("command", list(GRID_COMMANDS))
def test_a_grid_never_runs_its_plugins_without_consent(tmp_path, command) -> None:
    marker = tmp_path / "code-ran"
    grid, plugin = grid_with_plugin(tmp_path / "grids", marker)
    (tmp_path / "out").mkdir()
    args = [a.format(grid=grid, out=tmp_path / "out") for a in GRID_COMMANDS[command]]
    before = snapshot(tmp_path)
    result = invoke(*args, clean=True)
    assert_one_line_error(result, 2, f"touch.py (sha256:{sha256_of(plugin)[:16]})")
    assert "--allow-plugins" in result.stderr and str(grid) in result.stderr
    assert not marker.exists() and snapshot(tmp_path) == before


@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_allow_plugins_does_not_reach_outside_the_grids_folder(tmp_path, where) -> None:
    marker = tmp_path / "code-ran"
    outside = tmp_path / "elsewhere" / "x.py"
    listed = "../elsewhere/x.py" if where == "parent" else str(outside)
    grid, plugin = grid_with_plugin(tmp_path / "grids", marker, listed, plugin_at=outside)
    result = invoke("sweep", str(grid), "--dry-run", "--allow-plugins",
                      "--out", str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "outside the grid's folder: name each with --plugin")
    assert f"x.py (sha256:{sha256_of(plugin)[:16]})" in result.stderr and not marker.exists()
    named = invoke("sweep", str(grid), "--dry-run", "--plugin", str(outside),
                     "--out", str(tmp_path / "out"), clean=True)
    assert named.exit_code == 0, named.output
    assert marker.exists()  # named on the command line: the user chose to run it


def test_allow_plugins_loads_the_grids_own_plugins(tmp_path) -> None:
    marker = tmp_path / "code-ran"
    grid, _ = grid_with_plugin(tmp_path / "grids", marker, "sub/touch.py")
    result = invoke("sweep", str(grid), "--dry-run", "--allow-plugins",
                      "--out", str(tmp_path / "out"), clean=True)
    assert result.exit_code == 0, result.output
    assert marker.exists() and "1 runs" in result.output


def test_a_missing_grid_plugin_is_named(tmp_path) -> None:
    grid = tmp_path / "grid.toml"
    grid.write_text(GRID.format(plugins='"nowhere.py"'))
    result = invoke("sweep", str(grid), "--allow-plugins", "--out", str(tmp_path / "o"), clean=True)
    assert_one_line_error(result, 2, "nowhere.py: no such file")


def test_a_results_folder_naming_a_plugin_never_imports_it(tmp_path) -> None:
    """config.json records plugins by name and hash: report refuses, it does not import."""
    marker = tmp_path / "code-ran"
    plugin = tmp_path / "cosine_warmup.py"
    shutil.copy(Path(__file__).parents[1] / "experiments" / "plugins" / "cosine_warmup.py",
                plugin)
    out = tmp_path / "results"
    result = invoke("train", "--task", "digits", "--warmup", "untuned-cosine", "--epochs", "1",
                      "--train-samples", "64", "--no-progress", "--plugin", str(plugin),
                      "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    plugin.write_text(TOUCHING_PLUGIN.format(marker=str(marker)))  # a file of that name now
    from warmup_bench.optim import WARMUPS

    for name in ("cosine", "untuned-cosine"):  # as in a fresh process
        WARMUPS.pop(name, None)
    report = invoke("report", str(out), clean=True)
    assert report.exit_code == 2 and "needs plugin cosine_warmup.py#sha256:" in report.output
    assert not marker.exists()


# ---- failures during a run: plugin code, checkpoint writes ---------------------------

DIGITS = ["train", "--task", "digits", "--train-samples", "320", "--no-progress",
          "--warmup", "none"]  # a short run: no warmup, so no warning about its length


def only_run(out: Path) -> Path:
    (folder,) = (out / "digits").iterdir()
    return folder


def summary_of(out: Path) -> dict:
    return json.loads((only_run(out) / "summary.json").read_text())


def write_plugin(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("import torch\nimport warmup_bench as wb\nfrom warmup_bench.warmup import "
                    "BaseWarmup\n" + body)
    return path


RAISING_WARMUP = '''
class Flaky(BaseWarmup):
    def __init__(self, optimizer):
        super().__init__(optimizer, [{} for _ in optimizer.param_groups])

    def warmup_factor(self, step):
        if step == 4:
            raise TypeError("flaky factor")
        return 1.0

wb.register_warmup("flaky", lambda optimizer, *, period: Flaky(optimizer), description="x")
'''


def test_plugin_code_raising_mid_run_ends_it_failed_with_the_plugins_message(tmp_path) -> None:
    plugin = write_plugin(tmp_path, "flaky_warmup.py", RAISING_WARMUP)
    out = tmp_path / "out"
    result = invoke(*DIGITS, "--epochs", "1", "--warmup", "flaky", "--plugin", str(plugin),
                      "--out", str(out), clean=True)
    assert_one_line_error(result, 1, "plugin flaky_warmup.py (line 11) raised TypeError: "
                                     "flaky factor at step 4 (epoch 1)")
    summary = summary_of(out)
    assert summary["status"] == "failed"
    assert summary["error"] == ("plugin flaky_warmup.py (line 11) raised TypeError: flaky "
                                "factor at step 4 (epoch 1)")


def test_plugin_code_calling_sys_exit_mid_run_is_named(tmp_path) -> None:
    plugin = write_plugin(tmp_path, "exiting_warmup.py",
                          RAISING_WARMUP.replace('raise TypeError("flaky factor")',
                                                 "import sys; sys.exit(3)")
                          .replace('"flaky"', '"exiting"'))
    out = tmp_path / "out"
    result = invoke(*DIGITS, "--epochs", "1", "--warmup", "exiting", "--plugin", str(plugin),
                      "--out", str(out), clean=True)
    assert_one_line_error(result, 1, "plugin exiting_warmup.py (line 11) called sys.exit(3) "
                                     "at step 4 (epoch 1)")
    assert summary_of(out)["status"] == "failed"


def test_a_plugin_calling_sys_exit_while_loading_is_named(tmp_path) -> None:
    plugin = tmp_path / "quitter.py"
    plugin.write_text("import sys\nsys.exit(3)\n")
    result = invoke("list", "warmups", "--plugin", str(plugin), clean=True)
    assert_one_line_error(result, 2, "quitter.py called sys.exit(3) while loading")


def test_a_plugin_model_failing_to_build_is_one_line_and_writes_nothing(tmp_path) -> None:
    plugin = write_plugin(tmp_path, "bad_model.py", '''
class Broken(torch.nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.fc = torch.nn.Linear(64, num_classes)

    def forward(self, x):
        raise TypeError("forward takes no images")

wb.register_model("broken", Broken)
''')
    out = tmp_path / "out"
    result = invoke(*DIGITS, "--model", "broken", "--plugin", str(plugin), "--out", str(out),
                    clean=True)
    assert_one_line_error(result, 2, "plugin bad_model.py (line 11) failed while building the "
                                     "run: TypeError: forward takes no images")
    assert not out.exists()


def test_a_failed_checkpoint_write_ends_the_run_failed_and_resume_is_exact(
        tmp_path, monkeypatch) -> None:
    """torch.save reports a full disk as a RuntimeError: the run ends `failed`, one line,
    the last good checkpoint stays; resuming then gives an uninterrupted run's logs."""
    import torch

    args = [*DIGITS, "--epochs", "3", "--threads", "1"]
    clean = tmp_path / "clean"
    assert invoke(*args, "--out", str(clean), clean=True).exit_code == 0
    real_save, calls = torch.save, []

    def save(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 2:  # the second epoch's checkpoint
            raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos "
                               "64 vs 0\nmore detail")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", save)
    out = tmp_path / "out"
    result = invoke(*args, "--out", str(out), clean=True)
    assert_one_line_error(result, 1, "checkpoint.pt (")
    assert "unexpected pos" in result.stderr
    summary = summary_of(out)
    assert summary["status"] == "failed" and "cannot write" in summary["error"]
    monkeypatch.setattr(torch, "save", real_save)
    assert invoke(*args, "--resume", "--out", str(out), clean=True).exit_code == 0
    for name in ("steps.csv", "diagnostics.csv", "layers.csv"):
        assert (only_run(out) / name).read_bytes() == (only_run(clean) / name).read_bytes()
    ours, theirs = (only_run(o) / "epochs.csv" for o in (out, clean))
    untimed = [[row.split(",")[:-2] for row in p.read_text().splitlines()] for p in (ours, theirs)]
    assert untimed[0] == untimed[1]
    assert summary_of(out)["status"] == "complete"


# ---- run folders with damaged numbers: skipped by report, with one warning ------------

EPOCHS_HEADER = "epoch,train_loss,train_acc,test_loss,test_acc,seconds,images_per_second\n"
DAMAGE = {  # case -> (file, content, what the warning says)
    "summary-huge-acc": ("summary.json", {"best_test_acc": 1e308},
                         "best_test_acc 1e+308 is outside [0, 1]"),
    "summary-negative-acc": ("summary.json", {"best_test_acc": -5, "final_test_acc": -5},
                             "best_test_acc -5 is outside [0, 1]"),
    "summary-not-epochs-best": ("summary.json", {"best_test_acc": 0.95},
                                "summary.json's best_test_acc 0.95 is not epochs.csv's (0.9)"),
    "epochs-huge-acc": ("epochs.csv", EPOCHS_HEADER + "1,1.0,0.5,1.0,1e308,1.0,10.0\n",
                        "test_acc '1e308' in row 1 is not in [0, 1]"),
    "epochs-text-cell": ("epochs.csv", EPOCHS_HEADER + "1,1.0,0.5,abc,0.9,1.0,10.0\n",
                         "test_loss 'abc' in row 1 is not a number"),
    "epochs-no-speed": ("epochs.csv", EPOCHS_HEADER.replace(",images_per_second", "")
                        + "1,1.0,0.5,1.0,0.9,1.0\n", "no images_per_second column"),
    "epochs-inf": ("epochs.csv", EPOCHS_HEADER + "1,1.0,0.5,1.0,0.9,inf,10.0\n",
                   "seconds 'inf' in row 1 is not a finite number"),
    "epochs-nan": ("epochs.csv", EPOCHS_HEADER + "1,nan,0.5,1.0,0.9,1.0,10.0\n",
                   "train_loss 'nan' in row 1 is not a finite number"),
    "epochs-utf16": ("epochs.csv", b"\xff\xfe" + EPOCHS_HEADER.encode("utf-16-le"),
                     "epochs.csv: not UTF-8 text"),
    "epochs-repeated": ("epochs.csv", EPOCHS_HEADER + "1,1.0,0.5,1.0,0.9,1.0,10.0\n" * 2,
                        "its epoch column is not increasing"),
    "epochs-fraction-epoch": ("epochs.csv", EPOCHS_HEADER + "1.5,1.0,0.5,1.0,0.9,1.0,10.0\n",
                              "epoch '1.5' in row 1 is not a whole number"),
    "epochs-a-folder": ("epochs.csv", None, "epochs.csv is not a file"),
    "epochs-header-only": ("epochs.csv", EPOCHS_HEADER,
                           "summary.json records 1 epoch(s) done; epochs.csv has 0 row(s)"),
    "meta-bad-iterations": ("meta.json", '{"iterations_per_epoch": "abc"}',
                            "meta.json's iterations_per_epoch 'abc' is not a whole number"),
    "epochs-extra-field": ("epochs.csv", EPOCHS_HEADER + "1,1.0,0.5,1.0,0.9,1.0,10.0,7\n",
                           "its rows have more fields than its header"),
}


def damaged_results(tmp_path: Path, case: str) -> tuple[Path, Path]:
    from test_bad_inputs import GOOD_CONFIG, GOOD_SUMMARY, write_folder

    root = tmp_path / "results"
    write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    file, content, _ = DAMAGE[case]
    summary = {**GOOD_SUMMARY, **content} if file == "summary.json" else GOOD_SUMMARY
    bad = write_folder(root, "bad", {**GOOD_CONFIG, "seed": 2}, summary)
    if file != "summary.json":
        (bad / file).unlink(missing_ok=True)
        if content is None:
            (bad / file).mkdir()
        elif isinstance(content, bytes):
            (bad / file).write_bytes(content)
        else:
            (bad / file).write_text(content)
    return root, bad


@pytest.mark.parametrize("command", ["table", "speed", "out"])
@pytest.mark.parametrize("case", list(DAMAGE))
def test_report_skips_a_run_with_damaged_numbers(tmp_path, case, command) -> None:
    root, bad = damaged_results(tmp_path, case)
    args = {"table": [], "speed": ["--speed"], "out": ["--out", str(tmp_path / "report")]}
    result = invoke("report", str(root), *args[command], clean=True)
    assert_one_line_error(result, 0, DAMAGE[case][2])
    assert result.stderr.startswith(f"warning: skipping {bad}")
    if command == "table":
        assert "(1)" in result.stdout and "(2)" not in result.stdout  # the good run only


STEPS_DAMAGE = {
    "lr-text": ("step,epoch,lr,warmup_factor,loss\n1,1,fast,0.1,2.3\n", "lr 'fast' in row 1"),
    "no-lr": ("step,epoch,warmup_factor,loss\n1,1,0.1,2.3\n", "no lr column"),
    "step-huge": ("step,epoch,lr,warmup_factor,loss\n1e300,1,0.1,0.1,2.3\n",
                  "step '1e300' in row 1 is not a whole number in [1, 9.0072e+15]"),
    "factor-above-1": ("step,epoch,lr,warmup_factor,loss\n1,1,0.1,1.5,2.3\n",
                       "warmup_factor '1.5' in row 1 is not in [0, 1]"),
}


@pytest.mark.parametrize("case", list(STEPS_DAMAGE))
def test_report_skips_a_run_whose_steps_csv_is_damaged(tmp_path, case) -> None:
    """steps.csv is part of the record (meta.json's iterations are checked against it):
    a damaged one keeps its run out of the tables and the figures."""
    from test_bad_inputs import GOOD_CONFIG, GOOD_SUMMARY, OTHER_CONFIG, write_folder

    root = tmp_path / "results"
    write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    folder = write_folder(root, "bad", OTHER_CONFIG, GOOD_SUMMARY)
    content, needle = STEPS_DAMAGE[case]
    (folder / "steps.csv").write_text(content)
    result = invoke("report", str(root), "--out", str(tmp_path / "report"), clean=True)
    assert_one_line_error(result, 0, needle)
    assert result.stderr.startswith(f"warning: skipping {folder}: ")
    assert "(1)" in (tmp_path / "report" / "report.md").read_text()


# ---- damaged run folders and train --resume -------------------------------------------


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory) -> Path:
    """A finished 2-epoch digits run, marked interrupted (resumable from epoch 2)."""
    out = tmp_path_factory.mktemp("interrupted")
    assert invoke(*DIGITS, "--epochs", "2", "--out", str(out), clean=True).exit_code == 0
    folder = only_run(out)
    summary = json.loads((folder / "summary.json").read_text())
    (folder / "summary.json").write_text(json.dumps({**summary, "status": "interrupted"}))
    return folder


def copy_run(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(folder, out / "digits" / folder.name)
    return out


def test_resume_with_a_folder_where_steps_csv_should_be_is_one_line(tmp_path,
                                                                      interrupted_run) -> None:
    out = copy_run(interrupted_run, tmp_path)
    steps = only_run(out) / "steps.csv"
    steps.unlink()
    steps.mkdir()
    before = snapshot(out, skip=("lock",))
    result = invoke(*DIGITS, "--epochs", "2", "--resume", "--out", str(out), clean=True)
    assert_one_line_error(result, 2, "steps.csv is not a file: the run folder is damaged")
    assert snapshot(out, skip=("lock",)) == before


def test_resume_over_undecodable_rows_redoes_them(tmp_path, interrupted_run) -> None:
    """Bytes 0xff 0xfe after the checkpointed rows: the resume drops and redoes them."""
    out = copy_run(interrupted_run, tmp_path)
    folder = only_run(out)
    clean = (folder / "steps.csv").read_bytes()
    state = __import__("torch").load(folder / "checkpoint.pt", weights_only=True)
    epochs = (folder / "epochs.csv").read_bytes().split(b"\n")
    (folder / "epochs.csv").write_bytes(b"\n".join(epochs[:state["rows"]["epochs"] + 1])
                                        + b"\n\xff\xfe1,2,3\n")
    (folder / "steps.csv").write_bytes(clean + b"\xff\xfe9,9,9\n")
    result = invoke(*DIGITS, "--epochs", "2", "--resume", "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    assert (folder / "steps.csv").read_bytes() == clean
    assert json.loads((folder / "summary.json").read_text())["status"] == "complete"


# ---- terminal injection ----------------------------------------------------------------

HOSTILE = "EPYC [bold red]pwned[/bold red] \x1b[2J\x1b]0;title\x07 \u202eevil"


def test_text_from_run_folders_and_grids_reaches_the_terminal_escaped(tmp_path) -> None:
    from test_bad_inputs import GOOD_CONFIG, GOOD_SUMMARY, write_folder

    root = tmp_path / "results"
    folder = write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    (folder / "meta.json").write_text(json.dumps({"device_name": HOSTILE}))
    speed = invoke("report", str(root), "--speed", clean=True)
    assert speed.exit_code == 0, speed.output
    assert "[bold red]pwned[/bold red]" in speed.stdout  # shown as text, not as markup
    assert "\x1b" not in speed.stdout and "\\x1b[2J" in speed.stdout
    assert "\x07" not in speed.stdout and "\u202e" not in speed.stdout

    grid = tmp_path / "grid.toml"
    grid.write_text(f'title = {json.dumps(HOSTILE)}\ndescription = {json.dumps(HOSTILE)}\n'
                    'task = "digits"\n[fixed]\nepochs = 1\n')
    dry = invoke("sweep", str(grid), "--dry-run", "--out", str(tmp_path / "o"), clean=True)
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.count("[bold red]pwned[/bold red]") == 2
    assert "\x1b" not in dry.stdout and "\\x1b[2J" in dry.stdout


def test_control_codes_in_a_folder_name_are_escaped_in_warnings(tmp_path) -> None:
    from test_bad_inputs import GOOD_CONFIG, GOOD_SUMMARY, write_folder

    root = tmp_path / "results"
    write_folder(root, "good", GOOD_CONFIG, GOOD_SUMMARY)
    write_folder(root, "bad\x1b[2J", GOOD_CONFIG, {**GOOD_SUMMARY, "status": "running"},
                 keep_name=True)
    result = invoke("report", str(root), clean=True)
    assert "bad\\x1b[2J" in result.stderr and "\x1b" not in result.stderr


# ---- output paths of predict, export, plot-periods -------------------------------------


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory) -> Path:
    """A digits run trained on an .npz whose class names would be mathtext to matplotlib."""
    import numpy as np

    from warmup_bench.data.readers import read_sklearn_digits

    root = tmp_path_factory.mktemp("saved")
    (x_train, y_train), (x_test, y_test) = read_sklearn_digits()
    names = np.array(["$\\bogus$", "a\\b", "$x^$", "c_{d}", "e^f", "4", "5", "6", "7", "8"])
    np.savez(root / "math.npz", x_train=x_train[:, 0], y_train=y_train, x_test=x_test[:, 0],
             y_test=y_test, class_names=names)
    out = root / "results"
    result = invoke(*DIGITS, "--epochs", "1", "--save-model", "--data",
                      f"npz:{root / 'math.npz'}", "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    return only_run(out)


def test_predict_draws_class_names_with_dollars_and_backslashes(saved_model, tmp_path) -> None:
    out = tmp_path / "p.png"
    result = invoke("predict", str(saved_model), "--data",
                      f"npz:{saved_model.parents[2] / 'math.npz'}", "--out", str(out), clean=True)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def read_only(tmp_path) -> Path:
    """A read-only file system (a tmpfs mounted ro), where the machine allows mounting."""
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def output_cases(tmp_path: Path, read_only_dir: Path | None) -> dict[str, tuple[Path, str]]:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder").mkdir(exist_ok=True)
    cases = {"existing-folder": (tmp_path / "a-folder", "is a folder; give a file name"),
             "under-a-file": (tmp_path / "a-file" / "x.png", "a-file is a file, not a folder"),
             "in-proc": (Path("/proc/x/y.png"), "/proc is not writable")}
    if read_only_dir is not None:
        cases["read-only"] = (read_only_dir / "x.png", "Read-only file system")
    return cases


@pytest.mark.parametrize("command", ["predict", "export"])
@pytest.mark.parametrize("case", ["existing-folder", "under-a-file", "in-proc"])
def test_predict_and_export_refuse_unwritable_outputs(saved_model, tmp_path, command,
                                                      case) -> None:
    target, needle = output_cases(tmp_path, None)[case]
    data = ["--data", f"npz:{saved_model.parents[2] / 'math.npz'}"]
    before = snapshot(tmp_path)
    result = invoke(command, str(saved_model), *data, "--out", str(target), clean=True)
    assert_one_line_error(result, 2, needle)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["predict", "export", "plot-periods"])
def test_outputs_on_a_read_only_file_system_are_one_line(saved_model, read_only,
                                                         command) -> None:
    data = ["--data", f"npz:{saved_model.parents[2] / 'math.npz'}"]
    args = {"predict": ["predict", str(saved_model), *data, "--out", str(read_only / "p.png")],
            "export": ["export", str(saved_model), *data, "--out", str(read_only / "m.onnx")],
            "plot-periods": ["plot-periods", "--out", str(read_only / "plots")]}[command]
    assert_one_line_error(invoke(*args, clean=True), 2, "Read-only file system")


def test_train_out_in_proc_is_one_line_exit_2(tmp_path) -> None:
    assert_one_line_error(invoke(*DIGITS, "--out", "/proc/x", clean=True), 2,
                          "/proc is not writable")


def test_a_batch_larger_than_the_training_set_is_one_line(tmp_path) -> None:
    result = invoke(*DIGITS, "--batch-size", "4096", "--out", str(tmp_path / "o"), clean=True)
    assert_one_line_error(result, 2, "--batch-size 4096 exceeds the 320 training samples")
    assert not (tmp_path / "o").exists()


BAD_FACTOR_WARMUP = '''
class Odd(BaseWarmup):
    def __init__(self, optimizer):
        super().__init__(optimizer, [{{}} for _ in optimizer.param_groups])

    def warmup_factor(self, step):
        return {value} if step >= {at} else 0.5

wb.register_warmup("{name}", lambda optimizer, *, period: Odd(optimizer), description="x")
'''


@pytest.mark.parametrize(("value", "shown"), [("-0.5", "-0.5"), ("1.5", "1.5"),
                                              ("float('nan')", "nan")])
def test_a_plugin_warmup_factor_outside_0_1_fails_the_run_naming_plugin_and_step(
        tmp_path, value, shown) -> None:
    name = f"odd{len(shown)}{value[0]}"
    plugin = write_plugin(tmp_path, f"{name}.py",
                          BAD_FACTOR_WARMUP.format(value=value, at=2, name=name))
    out = tmp_path / "out"
    result = invoke(*DIGITS, "--epochs", "1", "--warmup", name, "--plugin", str(plugin),
                      "--out", str(out), clean=True)
    assert_one_line_error(result, 1, f"plugin {name}.py raised WarmupFactorError: "
                                     f"Odd.warmup_factor returned {shown} at iteration 3")
    assert "at step 2 (epoch 1)" in result.stderr  # stepped after iteration 2, for iteration 3
    assert summary_of(out)["status"] == "failed"
    import pandas as pd

    assert (pd.read_csv(only_run(out) / "steps.csv")["lr"] >= 0).all()


def test_a_plugin_warmup_bad_from_the_first_step_writes_nothing(tmp_path) -> None:
    plugin = write_plugin(tmp_path, "odd_first.py",
                          BAD_FACTOR_WARMUP.format(value="-1.0", at=0, name="oddfirst"))
    out = tmp_path / "out"
    result = invoke(*DIGITS, "--warmup", "oddfirst", "--plugin", str(plugin),
                      "--out", str(out), clean=True)
    assert_one_line_error(result, 2, "failed while building the run: WarmupFactorError: "
                                     "Odd.warmup_factor returned -1.0 at iteration 1")
    assert "plugin odd_first.py (line 7)" in result.stderr  # the line building the warmup
    assert not out.exists()


@pytest.mark.slow
def test_predict_and_export_find_the_runs_own_data_without_data(saved_model, tmp_path) -> None:
    """The run recorded where its .npz was read (meta.json's data_source): no --data."""
    meta = json.loads((saved_model / "meta.json").read_text())
    assert meta["data_source"] == f"npz:{(saved_model.parents[2] / 'math.npz').resolve()}"
    predicted = invoke("predict", str(saved_model), "--out", str(tmp_path / "p.png"), clean=True)
    assert predicted.exit_code == 0, predicted.output
    exported = invoke("export", str(saved_model), "--out", str(tmp_path / "m.onnx"), clean=True)
    assert exported.exit_code == 0, exported.output


def test_predict_refuses_a_runs_data_file_that_changed(saved_model, tmp_path) -> None:
    import numpy as np

    moved = tmp_path / "math.npz"
    with np.load(saved_model.parents[2] / "math.npz") as arrays:
        np.savez(moved, **{k: arrays[k] for k in arrays.files}, extra=np.zeros(1))
    result = invoke("predict", str(saved_model), "--data", f"npz:{moved}",
                      "--out", str(tmp_path / "p.png"), clean=True)
    assert_one_line_error(result, 2, "(its source changed)")


ODD_CELLS = ["1", "1.0", " 1", "+1", '"1"', "1,2", "1e0", "1d0", "0x1", "1_0", "inf",
             "-inf", "Infinity", "nan", "NaN", "", "NA", "null", "True", "-0.0", "1e400",
             "1.", ".5", "5e-324", "0.1000000000000000055511151231257827", "\u0663"]


@pytest.mark.parametrize("column", ["step", "loss", "update_norm"])
def test_the_fast_csv_reader_agrees_with_the_checking_one_on_every_cell(
        tmp_path, column, monkeypatch) -> None:
    """read_csv parses with pandas' C reader first and falls back to the cell-by-cell
    checking reader: both must give the same frame, or the same one-line error."""
    from warmup_bench.runs import csvlogs

    def read_both(path):
        results = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(csvlogs, "_read_numeric", lambda text: None)
            try:
                results.append(csvlogs.read_csv(path, one_row_per_key=False))
            except csvlogs.RunFileError as error:
                results.append(str(error))
        monkeypatch.undo()
        return results

    for i, cell in enumerate(ODD_CELLS):
        path = tmp_path / f"{i}.csv"
        path.write_text(f"{column},lr\n{cell},0.5\n")
        fast, checked = read_both(path)
        if isinstance(checked, str):
            assert fast == checked, cell
        else:
            pd.testing.assert_frame_equal(fast, checked, check_exact=True)


def test_run_csvs_read_back_every_float_bit_for_bit(tmp_path) -> None:
    from warmup_bench.runs.csvlogs import CsvLog, read_csv

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-300, 300, 5000),
                             [5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1]])
    log = CsvLog(tmp_path / "diagnostics.csv", ["step", "update_norm"])
    for step, value in enumerate(values, 1):
        log.append({"step": step, "update_norm": float(value)})
    log.close()
    read = read_csv(tmp_path / "diagnostics.csv")["update_norm"].to_numpy()
    assert read.tobytes() == values.tobytes()


def test_resume_with_restart_and_report_epochs_below_one_are_one_line(tmp_path) -> None:
    result = invoke("train", "--task", "digits", "--resume", "--restart", "--out",
                      str(tmp_path / "out"), clean=True)
    assert_one_line_error(result, 2, "--resume and --restart contradict each other")
    assert not (tmp_path / "out").exists()
    (tmp_path / "results").mkdir()
    result = invoke("report", str(tmp_path / "results"), "--epochs", "-3", clean=True)
    assert_one_line_error(result, 2, "--epochs -3 must be at least 1.")
