"""Training one run: `train(cfg, out, options)`.

  run.py         the lifecycle of a run alone (`train`) or a pack (`train_pack`): build,
                 lock, restore or start, the epochs, the final status
  session.py     one run while it trains: its folder's files, each epoch's record
  loop.py        one epoch of every member's steps (the warmup protocol per iteration)
  evaluation.py  evaluation, at the weights a run is judged by
  build.py       loaders, model, optimizer / schedule / warmup, loss, from the config
  device.py      the device and the kernels chosen for it (layout, fused step, bf16)
  checkpoint.py  the run's state after an epoch, saved and restored
  pack.py        packed training's arithmetic: many runs as one vectorised model
  pack_size.py   how many runs to pack (`sweep --pack auto`)
(RunOptions, how a run is executed, is warmup_bench.execution)
"""

from ..execution import RunOptions
from .build import Loaders, Net, build_net, check_model_fits, make_loaders
from .checkpoint import RunState
from .device import (
    DEVICE_FORMS,
    Kernels,
    choose_kernels,
    device_name,
    fused_optimizer,
    memory_format,
    native_bf16,
    resolve_device,
)
from .evaluation import evaluate
from .loop import Diverged, Progress, train_epoch
from .pack import pack_key
from .pack_size import auto_pack_size
from .run import PackError, RunExists, RunFailed, RunResult, train, train_pack

__all__ = ["train", "RunOptions", "RunResult", "RunExists", "RunFailed", "Diverged",
           "Progress", "RunState", "Loaders", "Net", "Kernels", "DEVICE_FORMS", "build_net",
           "check_model_fits", "make_loaders", "choose_kernels", "device_name",
           "fused_optimizer", "memory_format", "native_bf16", "resolve_device", "evaluate",
           "train_epoch", "train_pack", "pack_key", "auto_pack_size", "PackError"]
