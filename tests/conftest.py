"""Shared by every test: registries are process-wide, so each test starts from the
built-ins (and whatever earlier tests' modules import) and leaves them so."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def registries():
    from warmup_bench import plugins
    from warmup_bench.registry import Registry

    saved, loaded = Registry.snapshot(), dict(plugins._loaded)
    yield
    Registry.restore(saved)
    plugins._loaded.clear()
    plugins._loaded.update(loaded)
