"""warmup-bench: learning-rate warmup benchmarks for adaptive optimizers.

The registration API for plugins (`register_warmup`, `register_optimizer`,
`register_schedule`, `register_model`, `register_dataset`, `register_data`,
`register_task`) is importable from here; see warmup_bench.extend.
"""

__version__ = "0.1.0"

_PLUGIN_API = ("register_warmup", "register_optimizer", "register_schedule", "register_model",
               "register_dataset", "register_data", "register_task")


def __getattr__(name: str):
    # imported on first use: `warmup-bench --version` should not pay for torch
    if name in _PLUGIN_API:
        from . import extend

        return getattr(extend, name)
    raise AttributeError(f"module 'warmup_bench' has no attribute {name!r}")
