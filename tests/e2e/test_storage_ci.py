"""An unreachable PostgreSQL skips the storage tests locally but fails them in CI (``CI`` set)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_a_postgres_test(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["SPEECHBOT_TEST_POSTGRES_URL"] = "postgresql://postgres@127.0.0.1:1/test"  # nothing listens on port 1
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "tests.support.storage_fixtures", "-p", "no:cacheprovider",
            "--noconftest", "-rs", "-q", "tests/unit/storage/test_store.py::test_ping[postgresql]",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize(("ci", "outcome"), [(False, "1 skipped"), (True, "1 error")])
def test_unreachable_postgres(ci: bool, outcome: str) -> None:
    result = _run_a_postgres_test(ci)
    assert outcome in result.stdout, result.stdout[-2000:]
    assert (result.returncode != 0) is ci
    assert "127.0.0.1:1/test is unreachable" in result.stdout
