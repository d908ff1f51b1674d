"""The owner's controls held in memory: this process's changes at once, another process's within the ttl, and
the last known state kept when the database does not answer."""

from __future__ import annotations

from pathlib import Path

from bot.owner_controls import BLOCKED_GUILD, BLOCKED_USER, OwnerControls
from bot.storage import StorageError, Store

GUILD, USER = 111_111_111_111_111_111, 333_333_333_333_333_333


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_another_processs_changes_are_seen_once_the_ttl_ran_out(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    async with await Store.open(url) as mine, await Store.open(url) as theirs:
        clock = Clock()
        controls = OwnerControls(mine, ttl=30, clock=clock)
        await controls.refresh()
        other = OwnerControls(theirs)
        await other.set_user_blocked(USER, True)
        await other.set_guild_blocked(GUILD, True)
        await other.set_engine_disabled("openai", True)

        clock.now = 29
        await controls.refresh()
        assert controls.refusal(GUILD, USER) is None and controls.disabled_engines() == frozenset()
        clock.now = 30
        await controls.refresh()
        assert controls.refusal(GUILD, USER) == BLOCKED_GUILD  # the server's line comes first
        assert controls.refusal(None, USER) == BLOCKED_USER
        assert controls.disabled_engines() == {"openai"}


async def test_a_database_that_does_not_answer_keeps_the_last_known_blocks(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    clock = Clock()
    controls = OwnerControls(store, ttl=30, clock=clock)
    await controls.set_user_blocked(USER, True)

    async def unavailable() -> None:
        raise StorageError("The database is unavailable: disk I/O error")

    store.owner_state = unavailable  # type: ignore[method-assign]
    clock.now = 100
    await controls.refresh()
    assert controls.user_blocked(USER)
    await store.close()
