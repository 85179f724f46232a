"""Training one run: `train(cfg, out, options)`.

  run.py         the lifecycle: build, lock, restore or start, the epochs, the final status
  loop.py        one epoch of steps (the warmup protocol per iteration), and evaluation
  build.py       loaders, model, optimizer / schedule / warmup, loss, from the config
  device.py      the device and the kernels chosen for it (layout, fused step, bf16)
  checkpoint.py  the run's state after an epoch, saved and restored
  pack.py        packed training: many runs as one vectorised model, and a pack's epoch
  packed_run.py  a pack's lifecycle: `train_pack(cfgs, out, options)`
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
from .loop import Diverged, Progress, evaluate, train_epoch
from .pack import pack_key
from .pack_size import auto_pack_size
from .packed_run import PackError, train_pack
from .run import RunExists, RunFailed, RunResult, train

__all__ = ["train", "RunOptions", "RunResult", "RunExists", "RunFailed", "Diverged",
           "Progress", "RunState", "Loaders", "Net", "Kernels", "DEVICE_FORMS", "build_net",
           "check_model_fits", "make_loaders", "choose_kernels", "device_name",
           "fused_optimizer", "memory_format", "native_bf16", "resolve_device", "evaluate",
           "train_epoch", "train_pack", "pack_key", "auto_pack_size", "PackError"]
