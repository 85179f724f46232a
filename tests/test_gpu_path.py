"""The branches only a GPU takes, tested on the CPU by forcing them: loading a checkpoint
for a run on another device, the pack-size probe with dropout under vmap as on a GPU, and
the choices a CUDA run records. (tests/test_cuda.py runs the real thing where a GPU is.)"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from warmup_bench.data import load_dataset
from warmup_bench.execution import RunOptions
from warmup_bench.models import dropout
from warmup_bench.tasks import resolve_config
from warmup_bench.train import train
from warmup_bench.train.build import build_net, make_loaders
from warmup_bench.train.checkpoint import restore


def finished_run_and_a_fresh_net(tmp_path):
    """A finished one-epoch digits run (its folder, config) and a net built as a resume
    of it builds one, before anything is restored into it."""
    cfg = resolve_config("digits", {"epochs": 1, "train_samples": 64, "warmup": "none"})
    done = train(cfg, tmp_path, RunOptions(on_note=None, diagnostics=False))
    data = load_dataset("digits")
    loaders = make_loaders(cfg, data, torch.device("cpu"))
    return done.run, cfg, build_net(cfg, data, torch.device("cpu"), len(loaders.train))


def test_a_checkpoint_loads_on_the_cpu_and_each_object_places_its_own(tmp_path) -> None:
    """A run on another device (here the "meta" device stands for CUDA) restores from a
    checkpoint read onto the CPU: its generator state stays a CPU byte tensor, the model's
    weights are copied onto its own parameters, and the optimizer's step counters stay
    where torch keeps them (the CPU; on a GPU a step there would make the multi-tensor
    Adam sync twice per parameter per step)."""
    run, cfg, net = finished_run_and_a_fresh_net(tmp_path)
    elsewhere = dataclasses.replace(net, device=torch.device("meta"))
    state = restore(run, cfg, elsewhere, None)
    saved = torch.load(run.path / "checkpoint.pt", weights_only=True)
    assert state.epoch == 1
    assert all(torch.equal(net.model.state_dict()[k], v) for k, v in saved["model"].items())
    steps = [s["step"] for s in net.training.optimizer.state.values()]
    assert steps and all(s.device.type == "cpu" and s.item() == 2 for s in steps)
    assert torch.equal(net.generator.get_state(), saved["rng"]["cpu"])


@pytest.fixture
def masks_as_on_a_gpu(monkeypatch) -> None:
    """Dropout takes its non-CPU branch: torch's masks, per member under vmap."""
    monkeypatch.setattr(dropout, "numpy_device", lambda device: False)


def test_the_pack_size_probe_runs_a_vit_with_dropout_under_vmap(masks_as_on_a_gpu) -> None:
    from warmup_bench.train.pack_size import probe

    cfg = resolve_config("mnist-vit", {"batch_size": 8})
    speeds = probe(cfg, torch.device("cpu"), most=2, steps=1)
    assert set(speeds) == {1, 2} and all(s > 0 for s in speeds.values())


def test_off_the_cpu_a_pack_draws_each_site_for_all_members_at_once(masks_as_on_a_gpu) -> None:
    """One key per member per forward; a member's masks depend on its generator alone (not
    on who else is in the pack); sites differ; Bernoulli(1 - p) to within sampling."""
    def generators(*seeds: int) -> list[torch.Generator]:
        return [torch.Generator().manual_seed(seed) for seed in seeds]

    def forward(pack_generators, sites: int = 3) -> list[torch.Tensor]:
        with dropout.member_generators(pack_generators):
            pack = dropout._members
            return [dropout.members_noise(torch.Size([200, 500]), 0.1, torch.float32,
                                          torch.device("cpu"), pack) for _ in range(sites)]

    pair, other = generators(7, 8), generators(7, 9, 10)
    a, b = forward(pair), forward(other)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(a, b))  # member 0: its own masks
    assert not torch.equal(a[0][0], a[1][0]) and not torch.equal(a[0][0], a[0][1])
    once = generators(7)[0]
    torch.empty((), dtype=torch.int64).random_(generator=once)
    assert torch.equal(pair[0].get_state(), once.get_state())  # one draw for 3 sites
    kept = torch.stack(a).gt(0).float().mean().item()
    assert abs(kept - 0.9) < 0.003
    assert set(a[0].unique().tolist()) == {0.0, dropout.inverse_keep(0.1, torch.float32)}


def test_rotate_translate_builds_no_tensor_from_host_values_per_batch(monkeypatch) -> None:
    """On a GPU a tensor built from Python values per batch is a copy to the device that
    waits for it: the augmentation's per-batch arithmetic uses scalars instead."""
    from warmup_bench.data.augment import RotateTranslate

    augment = RotateTranslate()
    params = augment.sample(64, torch.Generator().manual_seed(1))
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    expected = augment(images, params)

    def refused(*args, **kwargs):
        raise AssertionError("torch.tensor called per batch")

    monkeypatch.setattr(torch, "tensor", refused)
    assert torch.equal(augment(images, params), expected)


def test_the_cpu_share_hint_is_for_cpu_runs_only() -> None:
    from warmup_bench.train.device import slowdown_note

    assert "CPU time" in slowdown_note(3, 1000.0, 1000.0, 8, 0.1, torch.device("cpu"))
    assert slowdown_note(3, 1000.0, 1000.0, 8, 0.1, torch.device("cuda")) is None


@pytest.mark.parametrize("opt", ["nadamw", "radamw", "radam", "adamw", "sgd"])
def test_every_torch_optimizer_takes_its_multi_tensor_step_on_a_gpu(opt) -> None:
    """NAdam and RAdam keep torch's per-parameter loop on CPUs (its multi-tensor version
    rounds differently there) but take the multi-tensor one on GPUs, as torch itself
    would: a loop launches several kernels per parameter per step."""
    from warmup_bench.optim import OPTIMIZERS

    entry = OPTIMIZERS[opt]
    assert entry.kernel(torch.device("cuda")) == {"foreach": True}
    on_cpu = entry.kernel(torch.device("cpu"))
    assert on_cpu == ({} if opt in ("nadamw", "radamw", "radam") else {"foreach": True})


def test_cuda_math_is_chosen_and_recorded() -> None:
    from warmup_bench.train.device import cuda_math

    cuda = torch.device("cuda")
    assert cuda_math(cuda, None, False) == {"tf32": True, "cudnn_benchmark": True}
    assert cuda_math(cuda, False, True) == {"tf32": False, "cudnn_benchmark": False}
    assert cuda_math(torch.device("cpu"), None, False) == {"tf32": None,
                                                           "cudnn_benchmark": None}


def test_a_compile_mode_reaches_torch_compile_and_meta_json(tmp_path, monkeypatch) -> None:
    """--compile-mode reduce-overhead (CUDA graphs on a GPU) is torch.compile's mode, and
    recorded; torch.compile is stubbed here (the mode, not the compiler, is under test)."""
    import json

    modes = []

    def compile_stub(model, mode=None):
        modes.append(mode)
        return model

    monkeypatch.setattr(torch, "compile", compile_stub)
    cfg = resolve_config("digits", {"epochs": 1, "train_samples": 64, "warmup": "none",
                                    "compile": True})
    done = train(cfg, tmp_path, RunOptions(on_note=None, compile_mode="reduce-overhead"))
    assert modes == ["reduce-overhead"]
    assert json.loads((done.run.path / "meta.json").read_text())["compile_mode"] == \
        "reduce-overhead"


@pytest.mark.parametrize(("flags", "needle"), [
    (["--compile-mode", "reduce-overhead"], "--compile-mode reduce-overhead needs --compile"),
    (["--compile", "--compile-mode", "fast"], "--compile-mode 'fast' is not valid; choose "
                                              "from: default, reduce-overhead, max-autotune")])
def test_a_compile_mode_without_compile_or_unknown_is_one_line(tmp_path, flags,
                                                               needle) -> None:
    from clirun import invoke
    from test_bad_inputs import assert_one_line_error

    result = invoke("train", "--task", "digits", "--no-progress", "--out",
                      str(tmp_path / "out"), *flags, clean=True)
    assert_one_line_error(result, 2, needle)
    assert not (tmp_path / "out").exists()


def test_a_cuda_runs_generator_states_are_saved_and_restored_as_cpu_tensors(
        tmp_path, monkeypatch) -> None:
    """The CUDA generator's state goes into the checkpoint and back through torch's own
    calls, as the CPU byte tensor they take (recorded here: no GPU runs this test)."""
    from warmup_bench.train.checkpoint import checkpoint_state

    cuda_state = torch.arange(16, dtype=torch.uint8)
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device: cuda_state.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state",
                        lambda state, device: restored.append((state, device)))
    run, cfg, net = finished_run_and_a_fresh_net(tmp_path)
    on_gpu = dataclasses.replace(net, device=torch.device("cuda"))
    state = restore(run, cfg, net, None)  # a checkpoint written by a CPU run
    logs = run.open_logs(False, False)
    saved = checkpoint_state(on_gpu, state, logs, None)
    logs.close()
    assert torch.equal(saved["rng"]["cuda"], cuda_state)
    run.save_checkpoint(cfg, saved)
    restore(run, cfg, on_gpu, None)
    (state_given, device), = restored
    assert state_given.device.type == "cpu" and state_given.dtype == torch.uint8
    assert torch.equal(state_given, cuda_state) and device == torch.device("cuda")
