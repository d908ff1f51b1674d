"""Shared fixtures. The loopback doubles live in ``tests/loopback`` and are loaded as plugins; the fixture that
starts the real bot process (``bot``) is only visible to ``tests/e2e/`` (its conftest).

Every test is independent of the others, so the suite runs in parallel (``pytest -n auto``, pytest-xdist): each
test has its own temporary directory (per worker, from xdist), its own loopback servers on ephemeral ports and
its own PostgreSQL schema or database (``tests/support/storage_fixtures.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.loopback.discord_fixtures",
    "tests.loopback.speech_fixtures",
    "tests.loopback.realtime_fixtures",
    "tests.support.storage_fixtures",
    "tests.e2e.compat",  # with SPEECHBOT_WRITE_COMPAT=1: docs/COMPATIBILITY.md from the real-server tests
]


#: ``-n auto`` starts at most this many workers, whatever the machine.
MAX_AUTO_WORKERS = 16


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per CPU this process may use (a container's cpuset, not the host's count), at least
    two. More workers than CPUs would fill the time the end-to-end tests spend waiting, but they starve the tests
    that synthesize and recognize speech against real-time deadlines, and on a shared two-core machine some of
    those then time out. ``PYTEST_XDIST_AUTO_NUM_WORKERS`` overrides it, as pytest-xdist documents."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(cpus, MAX_AUTO_WORKERS))


def _cost_rank(item: pytest.Item) -> int:
    """Heavy tests first: tests marked slow, then end-to-end tests, then the rest."""
    if item.get_closest_marker("slow"):
        return 0
    return {"e2e": 1, "loopback_tests": 2}.get(item.path.relative_to(Path(__file__).parent).parts[0], 3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the heavy tests first (a stable sort: the order within a file is kept), so that a parallel run does not
    end on a worker still busy with a 20-second test while the others are idle."""
    items.sort(key=_cost_rank)
