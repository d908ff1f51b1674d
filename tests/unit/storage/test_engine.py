"""bot.storage.engine: a PostgreSQL URL without the postgres extra installed is one clear line."""

from __future__ import annotations

import importlib.util

import pytest

from bot.storage import StorageError
from bot.storage.engine import create_engine


def test_postgresql_without_asyncpg_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "asyncpg" else real(name, *a))
    with pytest.raises(StorageError, match=r"speechbot\[postgres\]"):
        create_engine("postgresql://bot@127.0.0.1/speechbot")
