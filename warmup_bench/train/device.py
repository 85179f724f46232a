"""Where and how a run's arithmetic executes: the device a --device string names, and
the kernels chosen for it (memory layout, fused optimizer step, bf16 autocast). Every
choice computes the same function; results differ between choices in the last bits, as
between thread counts, and each choice is recorded in the run's meta.json."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import ConfigError, TrainConfig
from ..models import MODELS

DEVICE_FORMS = "auto, cpu, cuda, cuda:N (an installed GPU's index) or mps"


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device a --device string names; ConfigError for anything else (torch
    itself accepts many strings, like 'meta' or 'xpu', that cannot train here)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d{1,4}))?", name)
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise ConfigError(f"--device {name!r} is not a device; use {DEVICE_FORMS}.")
    kind, index = match[1], match[2]
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine.")
    if kind == "cuda" and index is not None and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                          "CUDA device(s).")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {name}: MPS is not available on this machine.")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's model ("cpu (AMD EPYC 7B13)"), for speed tables."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return f"cpu ({line.split(':', 1)[1].strip()})"
        except OSError:
            pass
        return f"cpu ({platform.processor() or platform.machine()})"
    return device.type


@dataclass(frozen=True)
class Kernels:
    """How a run's arithmetic is executed on its device (an equivalence test trains the
    same curve on real data both ways)."""

    layout: torch.memory_format = torch.contiguous_format  # activations and weights
    fused_optimizer: bool = False  # the optimizer's single-kernel step, where it has one
    bf16: bool = False  # bf16 autocast
    compile_mode: str | None = None  # torch.compile's mode under --compile (None: off)

    def autocast(self, device: torch.device) -> Callable:
        """A context manager factory: bf16 autocast on `device`, or nothing."""
        return (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if self.bf16 \
            else nullcontext


def choose_kernels(cfg: TrainConfig, device: torch.device, channels_last: bool | None = None,
                   fused: bool | None = None, on_note: Callable[[str], None] | None = None,
                   compile_mode: str | None = None) -> Kernels:
    """The kernels of a run: the defaults below, unless the options force one; --amp
    falls back to float32 (with a note) where bf16 is not native. A compile mode needs
    --compile. Under reduce-overhead torch replays CUDA graphs: shapes must stay fixed
    (training batches do: the last partial one is dropped; evaluation's last batch makes
    a graph of its own), and a graph that mutates its inputs (BatchNorm's running
    statistics) may run without one, which torch logs; the optimizer's step stays eager."""
    if compile_mode is not None and not cfg.compile:
        raise ConfigError(f"--compile-mode {compile_mode} needs --compile: it is the mode "
                          "torch.compile compiles the model in.")
    bf16 = cfg.amp and native_bf16(device)
    if cfg.amp and not bf16 and on_note is not None:
        on_note(f"note: --amp (bf16 autocast) needs CUDA or a CPU with native bf16 "
                f"(AVX512-BF16 or AMX); {device_name(device)} has neither: training in "
                "float32.")
    mode = (compile_mode or "default") if cfg.compile else None
    return Kernels(memory_format(cfg, device, channels_last), fused_optimizer(device, fused),
                   bf16, mode)


def memory_format(cfg: TrainConfig, device: torch.device,
                  channels_last: bool | None = None) -> torch.memory_format:
    """The layout of a run's activations and weights. Conv nets run channels_last on CUDA
    and on CPUs, where oneDNN's NHWC kernels are faster (docs/cpu-speed.md); the ViT and
    MPS keep the contiguous layout. `channels_last` forces either."""
    if channels_last is None:
        channels_last = MODELS[cfg.model].channels_last and device.type in ("cuda", "cpu")
    return torch.channels_last if channels_last else torch.contiguous_format


def fused_optimizer(device: torch.device, fused: bool | None = None) -> bool:
    """Whether to take the optimizer's fused step (SGD, Adam, AdamW, AMSGradW). On CPUs by
    default: one vectorised pass over the parameters instead of one per operation, a
    fraction of the step's cost (docs/cpu-speed.md). On CUDA the multi-tensor step stays,
    as in torch."""
    return device.type == "cpu" if fused is None else fused


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively: CUDA, or a CPU with AVX512-BF16 or AMX (an
    emulated bf16 would be slower than float32, so --amp is ignored there)."""
    if device.type == "cuda":
        return True
    if device.type == "cpu":
        return any(getattr(torch.cpu, probe, lambda: False)()
                   for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return False


SLOWDOWN = 3.0  # an epoch this many times slower than the run's fastest one gets a hint
# below this share of its threads' CPU time, a training epoch was starved by other load
# (measured on the digits, 2 threads on 2 cores: 0.77 alone, 0.47 next to a 2-thread job)
CPU_SHARE = 0.6


def busy_note(load: float, cores: int, threads: int) -> str | None:
    """A hint when other processes already keep the cores busy: torch's default of one
    thread per core then thrashes, several times slower than one thread
    (docs/cpu-speed.md)."""
    if threads > 1 and load >= max(1.0, cores / 2):
        return (f"note: the machine is busy (load average {load:.1f} on {cores} cores): "
                f"{threads} threads per run may be far slower than --threads 1 here.")
    return None


def slowdown_note(epoch: int, speed: float, fastest: float, threads: int,
                  cpu_share: float = 1.0, device: torch.device = torch.device("cpu")
                  ) -> str | None:
    """A hint when an epoch trained SLOWDOWN times slower than the run's fastest one, or
    (on a CPU) got less than CPU_SHARE of its threads' CPU time (`cpu_share`: process CPU
    seconds over wall seconds x threads): other processes are using the cores. On a GPU
    the host mostly waits for the device: a low CPU share there says nothing."""
    fewer = " or --threads 1" if threads > 1 else ""
    if speed > 0 and fastest / speed >= SLOWDOWN:
        return (f"note: epoch {epoch} trained at {speed:,.0f} images/s, {fastest / speed:.0f}x "
                f"slower than this run's fastest ({fastest:,.0f}): another process may be "
                f"using the cores; run alone{fewer}.")
    if device.type == "cpu" and threads > 1 and cpu_share < CPU_SHARE:
        return (f"note: epoch {epoch} got {cpu_share:.0%} of the CPU time its {threads} "
                f"threads could use: another process is using the cores; run alone{fewer}.")
    return None


def cuda_math(device: torch.device, tf32: bool | None, deterministic: bool) -> dict:
    """How CUDA computes in float32, as meta.json records it (None off CUDA);
    `use_arithmetic` sets it.

    TF32 (10-bit mantissa products, float32 sums) is on by default for matmuls as for
    convolutions: torch already runs cuDNN convolutions in TF32 by default, so the conv
    nets ran so anyway, and an fp32 matmul (the ViT, every linear layer) runs at a
    fraction of the tensor cores' speed without it. --no-tf32 gives full float32 for
    both. cuDNN picks its fastest kernels by benchmark (the shapes of a run are fixed),
    except in deterministic mode, where the benchmark's choice could vary between runs."""
    if device.type != "cuda":
        return {"tf32": None, "cudnn_benchmark": None}
    return {"tf32": True if tf32 is None else tf32, "cudnn_benchmark": not deterministic}


def use_arithmetic(device: torch.device, deterministic: bool, tf32: bool | None) -> None:
    """Sets how a run's arithmetic executes on `device`, once before it builds anything:
    torch's deterministic algorithms (`use_deterministic`), then CUDA's float32 flags as
    `cuda_math` chooses them."""
    use_deterministic(deterministic)
    choice = cuda_math(device, tf32, deterministic)
    if choice["tf32"] is None:
        return
    torch.backends.cuda.matmul.allow_tf32 = choice["tf32"]
    torch.backends.cudnn.allow_tf32 = choice["tf32"]
    torch.backends.cudnn.benchmark = choice["cudnn_benchmark"]


def use_deterministic(on: bool) -> None:
    """torch's deterministic algorithms (and cuBLAS's fixed workspace, which they need on
    CUDA): the same floats from the same inputs on a GPU, where the default kernels
    (atomic adds in convolution backward, scatter) vary from run to run."""
    if not on:
        return

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
