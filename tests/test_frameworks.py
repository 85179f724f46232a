"""WarmupScheduler in the hands of a framework: the dampening protocol's LRs at every
step, a state_dict that resumes identically, and PyTorch Lightning driving it."""

from __future__ import annotations

import io

import pytest
import torch
from protocol import protocol_lrs
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR

import warmup_bench.warmup as wu

STEPS, SPLIT = 300, 123


def make(lr: float = 0.01):
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99))
    scheduler = CosineAnnealingLR(optimizer, T_max=STEPS, eta_min=1e-4)
    return model, optimizer, scheduler, wu.UntunedLinearWarmup(optimizer)  # period 200


def reference_lrs() -> list[float]:
    """The reference: pytorch_warmup's protocol written out."""
    return protocol_lrs(*make()[1:], STEPS)


def test_state_dict_mid_warmup_resumes_bit_for_bit() -> None:
    expected = reference_lrs()
    _, optimizer, scheduler, warmup = make()
    wrapper = wu.WarmupScheduler(warmup, scheduler)
    for _ in range(SPLIT):
        optimizer.step()
        wrapper.step()
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "lr": wrapper.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)  # plain data: frameworks may load it safely

    _, optimizer, scheduler, warmup = make(lr=0.5)  # a different LR: all must come from the state
    resumed = wu.WarmupScheduler(warmup, scheduler)
    resumed.load_state_dict(saved["lr"])  # either order works: the warmup re-dampens
    optimizer.load_state_dict(saved["optimizer"])
    assert resumed.last_epoch == SPLIT
    lrs = []
    for _ in range(SPLIT, STEPS):
        lrs.append(optimizer.param_groups[0]["lr"])
        assert resumed.get_last_lr() == [lrs[-1]]
        optimizer.step()
        resumed.step()
    assert lrs == expected[SPLIT:]
    assert expected[0] < expected[150] < 0.01  # the run really was warming up at the split


def test_warmup_without_scheduler_is_the_warmup_alone() -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    wrapper = wu.WarmupScheduler(wu.LinearWarmup(optimizer, 4))
    lrs = []
    for _ in range(6):
        lrs.append(wrapper.get_last_lr()[0])
        optimizer.step()
        wrapper.step()
    assert lrs == [0.1 * min(1.0, t / 4) for t in range(1, 7)]


def test_misuse_is_refused_with_the_reason() -> None:
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    warmup = wu.LinearWarmup(optimizer, 10)
    late = LambdaLR(optimizer, lambda s: 1.0)  # created after the warmup: undoes omega_1
    with pytest.raises(ValueError, match="create the LR scheduler before the warmup"):
        wu.WarmupScheduler(warmup, late)
    other = torch.optim.Adam(torch.nn.Linear(2, 1).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="same optimizer"):
        wu.WarmupScheduler(wu.LinearWarmup(optimizer, 10), LambdaLR(other, lambda s: 1.0))
    wrapper = wu.WarmupScheduler(wu.LinearWarmup(optimizer, 10))
    with pytest.raises(TypeError, match="takes no epoch"):
        wrapper.step(3)
    with pytest.raises(ValueError, match="scheduler_every must be an int >= 1"):
        wu.WarmupScheduler(wu.LinearWarmup(optimizer, 10), scheduler_every=0)


# ---- PyTorch Lightning calls .step() itself -----------------------------------------


lightning = pytest.importorskip("lightning")


class Regression(lightning.LightningModule):
    """A LightningModule whose configure_optimizers is docs/warmup-library.md's example."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 3)
        self.lrs: list[float] = []

    def training_step(self, batch, batch_index):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def on_before_optimizer_step(self, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])  # what this step applies

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=0.01, betas=(0.9, 0.99))
        scheduler = CosineAnnealingLR(optimizer, T_max=STEPS, eta_min=1e-4)
        warmup = wu.UntunedLinearWarmup(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": wu.WarmupScheduler(warmup, scheduler),
                                 "interval": "step"}}


def loader():
    generator = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(160, 4, generator=generator),
                                          torch.randint(0, 3, (160,), generator=generator))
    return torch.utils.data.DataLoader(data, batch_size=16)  # 10 steps an epoch


def fit(module, max_steps: int, root, ckpt_path=None) -> None:
    trainer = lightning.Trainer(max_steps=max_steps, accelerator="cpu", logger=False,
                                enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=root, enable_checkpointing=False)
    trainer.fit(module, loader(), ckpt_path=ckpt_path)
    if ckpt_path is None:
        trainer.save_checkpoint(root / "last.ckpt")


def test_lightning_applies_the_protocol_lrs_and_resumes_from_its_checkpoint(tmp_path) -> None:
    expected = reference_lrs()
    whole = Regression()
    fit(whole, STEPS, tmp_path / "whole")
    assert whole.lrs == expected

    first, second = Regression(), Regression()
    fit(first, 130, tmp_path / "split")  # stops mid-warmup, mid-epoch ... then resumes
    fit(second, STEPS, tmp_path / "split", ckpt_path=tmp_path / "split" / "last.ckpt")
    assert first.lrs + second.lrs == expected
