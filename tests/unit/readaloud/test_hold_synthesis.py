"""Synthesis during the moderation hold (issue 18), with a real store, ledger, cache and speech service, a speech
backend whose first byte comes when the test says, and a player that records when it asked for the audio.

Asserted: when the request reaches the backend and when the player gets audio, relative to the hold; what is
played; what is counted against the budgets; what is reserved afterwards (nothing may stay reserved).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.audio.formats import AudioFormat
from bot.config import load_settings
from bot.policy import Policy
from bot.readaloud.early import Waste
from bot.readaloud.filters import MessageFacts
from bot.readaloud.reader import Names, ReadAloud
from bot.setting_choices import HoldMode, SayName
from bot.speech.cache import AudioCache
from bot.speech.failover import Engine, FailoverSpeech
from bot.speech.models import SpeechRequest
from bot.speech_service import SpeechService
from bot.storage import Store
from bot.text import MessageInput
from bot.usage import UsageLedger, utc_today
from bot.voice.player import PlayItem

GUILD, VOICE = 1, 100
ALICE, BOB = 11, 12
HOLD = 0.3


class Stream:
    def __init__(self, backend: GatedBackend, text: str) -> None:
        self.backend, self.text = backend, text
        self.format = AudioFormat.PCM

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(4):
            yield self.text.encode() * 4
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        self.backend.closed.append(self.text)


class GatedBackend:
    """Answers after ``first_byte`` seconds (or when ``gate`` is set, if it is cleared); records what was asked
    and when, what was abandoned before the answer, and what was closed."""

    name = "gated"

    def __init__(self, first_byte: float = 0.05) -> None:
        self.first_byte = first_byte
        self.asked: list[tuple[str, float]] = []
        self.abandoned: list[str] = []
        self.closed: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def open(self, request: SpeechRequest) -> Stream:
        self.asked.append((request.text, time.monotonic()))
        try:
            await asyncio.sleep(self.first_byte)
            await self.gate.wait()
        except asyncio.CancelledError:
            self.abandoned.append(request.text)
            raise
        return Stream(self, request.text)

    async def close(self) -> None:
        return None

    def texts(self) -> list[str]:
        return [text for text, _ in self.asked]


@dataclass
class Player:
    """Plays items one at a time like the real player: asks for the audio, reads it, then the next."""

    channel: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(id=VOICE))
    played: list[tuple[str, float, float]] = field(default_factory=list)  # text, opened at, first audio at
    skipped: list[int] = field(default_factory=list)
    busy: asyncio.Event = field(default_factory=asyncio.Event)  # cleared: an item holds the player at its end
    current: PlayItem | None = None
    clear_next: bool = False  # the next item leaves the player unopened (cleared, the session ending)
    _tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.busy.set()
        self.player = SimpleNamespace(skip_if=self._skip_if)

    def enqueue(self, item: PlayItem) -> int:
        if self.clear_next:
            assert item.on_done is not None
            asyncio.get_running_loop().call_soon(item.on_done)
            return 0
        self._tasks[item.id] = asyncio.get_running_loop().create_task(self._play(item))
        return 0

    async def _play(self, item: PlayItem) -> None:
        self.current = item
        try:
            assert item.open_stream is not None
            opened = time.monotonic()
            first: float | None = None
            async for _ in await item.open_stream():
                first = first or time.monotonic()
            self.played.append((item.request.text, opened, first or opened))
            await self.busy.wait()
        except Exception:  # noqa: BLE001 - refused (a budget): the real player reports it
            pass
        finally:
            self.current = None
            assert item.on_done is not None
            item.on_done()

    def _skip_if(self, item_id: int) -> bool:
        self.skipped.append(item_id)
        if (task := self._tasks.get(item_id)) is not None:
            task.cancel()
        return True

    def texts(self) -> list[str]:
        return [text for text, _, _ in self.played]


@dataclass
class World:
    service: ReadAloud
    store: Store
    backend: GatedBackend
    player: Player
    ledger: UsageLedger
    next_id: int = 1000

    async def say(self, author: int, content: str) -> tuple[int, float]:
        self.next_id += 1
        sent_at = time.monotonic()
        await self.service.on_message(GUILD, self.next_id, *self._message(author, content))
        return self.next_id, sent_at

    async def edit(self, message_id: int, author: int, content: str) -> None:
        await self.service.on_edit(GUILD, message_id, *self._message(author, content))

    def _message(self, author: int, content: str) -> tuple[MessageFacts, Names, object]:
        name = {ALICE: "Alice", BOB: "Bob"}[author]
        facts = MessageFacts(VOICE, author, content, author_voice_channel_id=VOICE)
        return facts, Names(name, None, name.lower()), lambda spoken, _mode: MessageInput(content, spoken)

    async def idle(self) -> None:
        for _ in range(300):
            await asyncio.sleep(0.01)
            reader = self.service.reader(GUILD)
            if (reader is None or not len(reader.queue)) and all(t.done() for t in self.player._tasks.values()):
                return
        raise AssertionError("the reader did not finish")

    async def counted(self) -> tuple[int, int]:
        await self.ledger.flush()
        usage = await self.store.usage_since(GUILD, utc_today())
        return usage.characters, usage.requests

    def reserved(self) -> int:
        totals = self.ledger._totals.get(GUILD)  # what is still held matters here
        return 0 if totals is None else totals.reserved


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings({"DATA_DIR": str(tmp_path), "SPEECH_VOICES": "alloy,echo"})
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    await store.update_guild_settings(GUILD, say_name=SayName.NEVER, daily_char_budget=10_000)
    backend = GatedBackend()
    player = Player()
    sessions = SimpleNamespace(get=lambda guild_id: player if guild_id == GUILD else None)
    speech = FailoverSpeech(AudioCache(backend, namespace="tts-1"),  # type: ignore[arg-type]
                            [Engine("openai", "the speech service", "tts-1", backend)])  # type: ignore[arg-type]
    ledger = UsageLedger(store)
    speaking = SpeechService(speech, Policy(settings, store), ledger, settings)
    service = ReadAloud(sessions, store, speaking, hold=HOLD)  # type: ignore[arg-type]
    yield World(service, store, backend, player, ledger)
    await service.close()
    await ledger.close()
    await store.close()


async def test_the_request_starts_at_once_and_plays_when_the_hold_ends(world: World) -> None:
    _, sent_at = await world.say(ALICE, "hello there")
    await world.idle()
    (text, asked_at), = world.backend.asked
    (played, opened_at, first_audio), = world.player.played
    assert text == played == "hello there"
    assert asked_at - sent_at < HOLD / 2  # during the hold, not after it
    assert opened_at - sent_at >= HOLD - 0.01  # never before the hold ends
    assert first_audio - sent_at < HOLD + 0.1  # the audio was waiting: no synthesis after the hold
    assert await world.counted() == (len("hello there"), 1)
    assert world.reserved() == 0
    assert (world.service.early.started, world.service.early.used) == (1, 1)


async def test_playback_waits_for_the_first_audio_when_it_comes_after_the_hold(world: World) -> None:
    world.backend.first_byte = HOLD + 0.2
    _, sent_at = await world.say(ALICE, "slow one")
    await world.idle()
    (_, asked_at), = world.backend.asked
    (_, _, first_audio), = world.player.played
    assert asked_at - sent_at < HOLD / 2
    # max(hold, first byte), not hold + first byte
    assert HOLD + 0.2 <= first_audio - sent_at < 2 * HOLD + 0.2


async def test_strict_mode_sends_nothing_before_the_hold_ends(world: World) -> None:
    await world.store.update_guild_settings(GUILD, hold_mode=HoldMode.STRICT)
    _, sent_at = await world.say(ALICE, "strictly")
    await world.idle()
    (_, asked_at), = world.backend.asked
    assert asked_at - sent_at >= HOLD - 0.01
    assert world.player.texts() == ["strictly"]
    assert world.service.early.started == 0


async def test_the_servers_hold_length_applies(world: World) -> None:
    await world.store.update_guild_settings(GUILD, hold_seconds=0.6)
    _, sent_at = await world.say(ALICE, "longer hold")
    await world.idle()
    (_, opened_at, _), = world.player.played
    assert opened_at - sent_at >= 0.59


@pytest.mark.parametrize("mode", [HoldMode.EARLY, HoldMode.STRICT])
async def test_a_message_deleted_during_the_hold_is_never_played(world: World, mode: HoldMode) -> None:
    await world.store.update_guild_settings(GUILD, hold_mode=mode)
    message_id, _ = await world.say(ALICE, "delete me")
    await asyncio.sleep(HOLD / 2)
    world.service.on_delete(GUILD, [message_id])
    await asyncio.sleep(HOLD)
    await world.idle()
    assert world.player.played == []
    assert world.reserved() == 0
    if mode is HoldMode.STRICT:
        assert world.backend.asked == []
        assert await world.counted() == (0, 0)
    else:
        # The service answered before the deletion: it was sent and answered, so it is counted; the stream
        # was closed and nothing was played.
        assert world.backend.texts() == ["delete me"]
        assert await world.counted() == (len("delete me"), 1)
        assert world.service.early.wasted == {Waste.DELETED: 1}


async def test_a_deletion_before_the_service_answered_abandons_the_request_and_counts_nothing(
    world: World,
) -> None:
    world.backend.gate.clear()
    message_id, _ = await world.say(ALICE, "gone before the answer")
    await asyncio.sleep(HOLD / 2)
    assert world.backend.texts() == ["gone before the answer"]
    world.service.on_delete(GUILD, [message_id])
    await asyncio.sleep(0.05)
    assert world.backend.abandoned == ["gone before the answer"]
    world.backend.gate.set()
    await asyncio.sleep(HOLD)
    await world.idle()
    assert world.player.played == []
    assert await world.counted() == (0, 0)
    assert world.reserved() == 0


async def test_an_edit_during_the_hold_synthesizes_the_new_text_and_plays_only_it(world: World) -> None:
    message_id, _ = await world.say(ALICE, "before the edit")
    await asyncio.sleep(HOLD / 2)
    edited_at = time.monotonic()
    await world.edit(message_id, ALICE, "after the edit")
    await world.idle()
    assert world.backend.texts() == ["before the edit", "after the edit"]
    assert world.backend.asked[1][1] - edited_at < HOLD / 2  # again at once, not after the new hold
    (played, opened_at, _), = world.player.played
    assert played == "after the edit"
    assert opened_at - edited_at >= HOLD - 0.01  # the hold started again with the edit
    assert world.service.early.wasted == {Waste.EDITED: 1}
    assert world.reserved() == 0


async def test_messages_that_wait_behind_others_are_not_synthesized_early(world: World) -> None:
    """Only a message read as soon as its hold ends is synthesized early; the others keep today's order: they
    are synthesized while the previous one plays."""
    world.player.busy.clear()
    await world.say(ALICE, "first")
    await asyncio.sleep(HOLD + 0.1)  # "first" plays and holds the player
    _, _second_at = await world.say(BOB, "second")
    _, _third_at = await world.say(ALICE, "third")
    await asyncio.sleep(0.05)
    assert world.backend.texts() == ["first"]
    world.player.busy.set()
    await world.idle()
    assert world.player.texts() == ["first", "second", "third"]
    assert world.service.early.started == 1


async def test_a_budget_refusal_during_the_hold_sends_nothing(world: World) -> None:
    await world.store.update_guild_settings(GUILD, daily_char_budget=5)
    await world.say(ALICE, "far too long for the budget")
    await world.idle()
    assert world.backend.asked == []
    assert world.player.played == []
    assert world.reserved() == 0


async def test_the_bot_leaving_voice_stops_what_is_held(world: World) -> None:
    world.backend.gate.clear()
    await world.say(ALICE, "never heard")
    await asyncio.sleep(HOLD / 2)
    world.service.forget(GUILD)
    await asyncio.sleep(0.05)
    assert world.backend.abandoned == ["never heard"]
    assert world.player.played == []
    assert world.reserved() == 0


async def test_an_item_cleared_from_the_player_unopened_stops_its_synthesis(world: World) -> None:
    world.backend.gate.clear()
    world.player.clear_next = True
    await world.say(ALICE, "cleared before it played")
    await asyncio.sleep(HOLD + 0.1)
    assert world.backend.abandoned == ["cleared before it played"]
    assert world.player.played == []
    assert world.reserved() == 0
