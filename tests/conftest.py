"""Shared fixtures. The loopback doubles live in ``tests/loopback`` and are loaded as plugins; the fixture that
starts the real bot process (``bot``) is only visible to ``tests/e2e/`` (its conftest).

Every test is independent of the others, so the suite runs in parallel (``pytest -n auto``, pytest-xdist): each
test has its own temporary directory (per worker, from xdist), its own loopback servers on ephemeral ports and
its own PostgreSQL schema or database (``tests/support/storage_fixtures.py``)."""

from __future__ import annotations

import gc
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
    """``-n auto``: two workers per CPU this process may use (a container's cpuset, not the host's count), at
    least two. The end-to-end tests spend most of their time waiting (real-time audio, the bot's retry backoffs,
    Discord's deadlines): a second worker per CPU fills that time. One per CPU used to be the limit, when every
    bot start cost 1.3 s of CPU and the speech tests then missed their real-time deadlines; since the bots are
    forked from a pre-imported launcher (``tests/support/bot_launcher.py``) the suite takes 350-830 s of CPU
    and runs in 4-7.5 minutes on two cores with four workers (docs/testing.md). ``PYTEST_XDIST_AUTO_NUM_WORKERS``
    overrides it, as pytest-xdist documents."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(2, min(cpus + 1 if _in_process_only(config) else 2 * cpus, MAX_AUTO_WORKERS))


def _in_process_only(config: pytest.Config) -> bool:
    """Only unit or loopback tests asked for: one worker more than CPUs. They wait too (20 ms voice frames, the
    read-aloud hold, a person's reaction before a click, PostgreSQL): about 40% of the quick subset's test time
    is spent off the CPU. A third worker on two CPUs fills it (25-26.6 s against 27.7-29.6 s, 2026-12-04); a
    fourth costs more in collection (~3 s of CPU a worker) than it fills (26.8-28.1 s)."""
    tests = Path(__file__).parent
    paths = [Path(arg.split("::")[0]).resolve() for arg in config.args]
    return bool(paths) and all(
        any(path.is_relative_to(tests / tree) for tree in ("unit", "loopback_tests")) for path in paths)


def _cost_rank(item: pytest.Item) -> int:
    """Heavy tests first: tests marked slow, then end-to-end tests, then the rest."""
    if item.get_closest_marker("slow"):
        return 0
    return {"e2e": 1, "loopback_tests": 2}.get(item.path.relative_to(Path(__file__).parent).parts[0], 3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the heavy tests first (a stable sort: the order within a file is kept), so that a parallel run does not
    end on a worker still busy with a 20-second test while the others are idle."""
    items.sort(key=_cost_rank)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move everything collection created (every module imported, ~190,000 objects a worker) out of the garbage
    collector's sight: it lives until the process ends, and each full collection would otherwise walk it again.
    Measured on the quick unit subset (two workers, three runs each way): 35.0 s against 39.1 s."""
    gc.collect()
    gc.freeze()
