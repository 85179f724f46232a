"""Shared by every test: registries are process-wide, so each test starts from the
built-ins (and whatever earlier tests' modules import) and leaves them so."""

from __future__ import annotations

import os
import signal

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


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """With WARMUP_BENCH_TEST_TIMEOUT=N (scripts/gpu_check.sh sets it), a test that runs
    past N seconds fails with a TimeoutError, and the suite goes on: one hung test on a
    lent GPU must not eat the time the others (and the benchmark) need."""
    seconds = int(os.environ.get("WARMUP_BENCH_TEST_TIMEOUT", "0") or 0)
    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return

    def expired(signum, frame):
        raise TimeoutError(f"{item.nodeid} ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
