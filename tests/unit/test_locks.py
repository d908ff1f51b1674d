"""bot.locks.KeyedLock: mutual exclusion per key, and no lock left behind once nobody holds or waits."""

from __future__ import annotations

import asyncio

from bot.locks import KeyedLock


async def test_one_holder_per_key_and_other_keys_run_alongside() -> None:
    locks: KeyedLock[int] = KeyedLock()
    inside: dict[int, int] = {1: 0, 2: 0}
    most: dict[int, int] = {1: 0, 2: 0}

    async def work(key: int) -> None:
        async with locks.hold(key):
            inside[key] += 1
            most[key] = max(most[key], inside[key])
            await asyncio.sleep(0.001)
            inside[key] -= 1

    await asyncio.gather(*(work(key) for key in (1, 2) * 20))
    assert most == {1: 1, 2: 1}


async def test_a_key_is_forgotten_when_its_last_holder_leaves_but_not_while_someone_waits() -> None:
    locks: KeyedLock[int] = KeyedLock()
    release = asyncio.Event()
    order: list[str] = []

    async def first() -> None:
        async with locks.hold(7):
            order.append("first")
            await release.wait()

    async def second() -> None:
        async with locks.hold(7):
            order.append("second")

    tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
    await asyncio.sleep(0.01)
    assert len(locks) == 1 and locks.locked(7)
    release.set()
    await asyncio.gather(*tasks)
    assert order == ["first", "second"] and len(locks) == 0


async def test_a_thousand_guilds_leave_nothing_behind() -> None:
    locks: KeyedLock[int] = KeyedLock()
    for guild_id in range(1000):
        async with locks.hold(guild_id):
            pass
    assert len(locks) == 0
