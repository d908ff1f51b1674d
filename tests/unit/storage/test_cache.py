"""The settings cache: expiry, size bound, invalidation, and reads racing writes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bot.storage.cache import Cache, CacheKey

A = CacheKey("settings", 1)
A_PREFS = CacheKey("prefs", 1, 7)
B_PREFS = CacheKey("prefs", 2, 7)
B_OTHER = CacheKey("prefs", 2, 8)


class FakeClock:
    """Stands in for the cache module's ``time``: only ``monotonic`` is read, and it moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr("bot.storage.cache.time", SimpleNamespace(monotonic=fake.monotonic))
    return fake


def test_a_value_is_served_until_it_expires(clock: FakeClock) -> None:
    cache = Cache(ttl=0.05)
    cache.put(A, "value", cache.token())
    assert cache.get(A) == "value"
    clock.now = 1000.0 + 0.049
    assert cache.get(A) == "value"
    clock.now = 1000.0 + 0.05  # exactly its time-to-live after it was put
    assert cache.get(A) is None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = Cache(ttl=0)
    cache.put(A, "value", cache.token())
    assert cache.get(A) is None


def test_a_read_that_started_before_an_invalidation_is_not_cached() -> None:
    cache = Cache(ttl=60)
    token = cache.token()
    cache.invalidate(guild_id=99)  # some write happened while the read was in flight
    cache.put(A, "maybe stale", token)
    assert cache.get(A) is None


def test_invalidation_by_guild_by_user_and_both() -> None:
    cache = Cache(ttl=60)
    for key in (A, A_PREFS, B_PREFS, B_OTHER):
        cache.put(key, key, cache.token())

    cache.invalidate(guild_id=2, user_id=8)
    assert [cache.get(k) is not None for k in (A, A_PREFS, B_PREFS, B_OTHER)] == [True, True, True, False]
    cache.invalidate(user_id=7)
    assert [cache.get(k) is not None for k in (A, A_PREFS, B_PREFS)] == [True, False, False]
    cache.invalidate(guild_id=1)
    assert cache.get(A) is None


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = Cache(ttl=60, max_entries=2)
    cache.put(A, 1, cache.token())
    cache.put(A_PREFS, 2, cache.token())
    cache.get(A)
    cache.put(B_PREFS, 3, cache.token())
    assert (cache.get(A), cache.get(A_PREFS), cache.get(B_PREFS)) == (1, None, 3)
