"""The read-aloud service with a real store and policy, a counting speech backend and a recording player.

What is asserted is what would reach the speech endpoint and the player: texts, speeds, skips, usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from bot.config import load_settings
from bot.errors import UserFacingError
from bot.owner_controls import OwnerControls
from bot.policy import Policy
from bot.readaloud.filters import MessageFacts, Skip
from bot.readaloud.reader import Names, ReadAloud
from bot.speech.cache import AudioCache
from bot.speech.errors import SpeechError
from bot.speech.failover import Engine, FailoverSpeech
from bot.speech_service import SpeechService
from bot.storage import Store
from bot.text import MessageInput
from bot.usage import UsageLedger, utc_today
from bot.voice.player import PlayItem
from tests.unit.speech.test_cache import CountingBackend

GUILD, VOICE = 1, 100
ALICE, BOB = 11, 12


@dataclass
class RecordingSession:
    """Plays an item by reading its stream, then waits for ``release`` (if cleared) before finishing."""

    channel: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(id=VOICE))
    played: list[PlayItem] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    current: PlayItem | None = None
    queued: int = 0  # enqueued and not finished

    def __post_init__(self) -> None:
        self.release.set()
        self.player = SimpleNamespace(skip_if=self._skip_if)

    def enqueue(self, item: PlayItem) -> int:
        self.queued += 1  # counted now: its task starts on a later turn of the loop
        asyncio.get_running_loop().create_task(self._play(item))
        return 0

    async def _play(self, item: PlayItem) -> None:
        self.current = item
        try:
            assert item.open_stream is not None
            async for _ in await item.open_stream():
                pass
            self.played.append(item)
            await self.release.wait()
        except (UserFacingError, SpeechError):
            pass  # refused before anything was sent (a budget); the real player reports it
        finally:
            self.current = None
            self.queued -= 1
            assert item.on_done is not None
            item.on_done()

    def _skip_if(self, item_id: int) -> bool:
        self.skipped.append(item_id)
        return True


@dataclass
class World:
    service: ReadAloud
    store: Store
    backend: CountingBackend
    session: RecordingSession
    next_id: int = 1000

    async def say(self, author: int, content: str, **facts: object) -> tuple[int, Skip | None]:
        self.next_id += 1
        message_id = self.next_id
        fields: dict[str, object] = {"channel_id": VOICE, "author_id": author, "content": content,
                                     "author_voice_channel_id": VOICE, **facts}
        name = {ALICE: "Alice", BOB: "Bob"}[author]
        reason = await self.service.on_message(
            GUILD, message_id, MessageFacts(**fields), Names(name, None, name.lower()),  # type: ignore[arg-type]
            lambda spoken, _mode: MessageInput(content=content, author_name=spoken),
        )
        return message_id, reason

    def sent(self) -> list[str]:
        return [request.text for request in self.backend.requests]

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        for _ in range(500):
            if condition():
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what}")

    def waiting(self) -> int:
        reader = self.service.reader(GUILD)
        return 0 if reader is None else len(reader.queue)

    async def idle(self) -> None:
        reader = self.service.reader(GUILD)
        for _ in range(200):
            await asyncio.sleep(0.01)
            if (reader is None or not len(reader.queue)) and not self.session.queued:
                return
        raise AssertionError("the reader did not finish")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = load_settings({"DATA_DIR": str(tmp_path), "SPEECH_VOICES": "alloy,echo"})
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    backend = CountingBackend()
    session = RecordingSession()
    sessions = SimpleNamespace(get=lambda guild_id: session if guild_id == GUILD else None)
    speech = FailoverSpeech(AudioCache(backend, namespace="tts-1"),
                            [Engine("openai", "the speech service", "tts-1", backend)])  # type: ignore[arg-type]
    speaking = SpeechService(speech, Policy(settings, store), UsageLedger(store), settings, OwnerControls(store))
    service = ReadAloud(sessions, store, speaking, hold=0.05)  # type: ignore[arg-type]
    yield World(service, store, backend, session)
    await service.close()
    await speaking.ledger.close()
    await store.close()


async def test_names_are_said_when_the_speaker_changes_and_cached_text_is_not_sent_twice(world: World) -> None:
    for author, text in [(ALICE, "hi"), (ALICE, "again"), (BOB, "hi"), (ALICE, "again")]:
        await world.say(author, text)
        await world.idle()
    assert [item.request.text for item in world.session.played] == [
        "Alice said, hi", "again", "Bob said, hi", "Alice said, again"]
    assert world.sent() == ["Alice said, hi", "again", "Bob said, hi", "Alice said, again"]
    await world.say(BOB, "hi")
    await world.idle()
    assert len(world.backend.requests) == 4  # "Bob said, hi" came from the cache
    await world.service.speaking.ledger.flush()  # read-aloud usage is summed in memory and written in batches
    usage = await world.store.usage_since(GUILD, utc_today())
    assert (usage.characters, usage.requests) == (sum(len(text) for text in world.sent()), 4)


async def test_muted_members_and_empty_messages_are_skipped_before_anything_is_sent(world: World) -> None:
    await world.store.mute(GUILD, BOB, by=ALICE)
    assert (await world.say(BOB, "hello"))[1] is Skip.MUTED
    assert (await world.say(ALICE, "  ***  "))[1] is Skip.EMPTY
    assert (await world.say(ALICE, "hello", author_voice_channel_id=None))[1] is Skip.AUTHOR_NOT_IN_VOICE
    await world.idle()
    assert world.sent() == []


async def test_a_backlog_is_read_faster_and_the_speed_returns_when_it_clears(world: World) -> None:
    await world.store.update_guild_settings(GUILD, backlog_speedup=1.5, say_name="never")
    world.session.release.clear()
    await world.say(ALICE, "one")
    # "one" plays (and holds the player) before the others arrive
    await world.until(lambda: world.session.current is not None, "the first message playing")
    for text in ["two", "three", "four", "five", "six"]:
        await world.say(ALICE, text)
    # all five wait, and the first of them is past its hold and synthesized ahead while "one" plays
    await world.until(lambda: world.waiting() == 5 and "two" in world.sent(), "two synthesized ahead")
    world.session.release.set()
    await world.idle()
    speeds = {item.request.text: item.request.speed for item in world.session.played}
    assert speeds["one"] == 1.0  # alone when it was taken
    assert speeds["two"] == 1.5 and speeds["three"] == 1.5  # five, then four waiting
    assert speeds["six"] == 1.0


async def test_deleted_and_edited_messages_and_a_deletion_while_playing(world: World) -> None:
    await world.store.update_guild_settings(GUILD, say_name="never")
    world.session.release.clear()
    playing, _ = await world.say(ALICE, "first")
    await world.until(lambda: world.session.current is not None, "the first message playing")
    deleted, _ = await world.say(ALICE, "deleted")
    edited, _ = await world.say(ALICE, "before the edit")
    world.service.on_delete(GUILD, [deleted])
    await world.service.on_edit(
        GUILD, edited, MessageFacts(VOICE, ALICE, "after the edit", author_voice_channel_id=VOICE),
        Names("Alice", None, "alice"),
        lambda spoken, _mode: MessageInput(content="after the edit", author_name=spoken))
    world.service.on_delete(GUILD, [playing])
    assert world.session.skipped == [world.session.current.id]
    world.session.release.set()
    await world.idle()
    assert world.sent() == ["first", "after the edit"]


async def test_the_daily_budget_stops_what_would_pass_it(world: World) -> None:
    await world.store.update_guild_settings(GUILD, daily_char_budget=10, say_name="never")
    await world.say(ALICE, "short")
    await world.idle()
    await world.say(ALICE, "far too long for what is left")
    await world.idle()
    assert world.sent() == ["short"]


async def test_a_message_that_cannot_be_prepared_does_not_stop_the_guild(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import bot.readaloud.guild_reader as reader

    real = reader.clean_message

    def failing(message: MessageInput, options: object, **kwargs: object) -> str:
        if "include_author" in kwargs and message.content == "boom":
            raise RuntimeError("a bug in cleaning")
        return real(message, options, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(reader, "clean_message", failing)
    await world.say(ALICE, "boom")
    await world.say(ALICE, "after")
    await world.idle()
    assert world.sent() == ["Alice said, after"]
    assert "could not prepare a message" in caplog.text


async def test_a_server_or_author_blocked_by_the_owner_is_never_read_nor_sent(world: World) -> None:
    controls = world.service.speaking.controls
    assert controls is not None
    await controls.set_user_blocked(BOB, True)
    assert (await world.say(BOB, "hello"))[1] is Skip.BLOCKED
    assert (await world.say(ALICE, "hello"))[1] is None
    await world.idle()
    await controls.set_guild_blocked(GUILD, True)
    assert (await world.say(ALICE, "again"))[1] is Skip.BLOCKED
    await world.idle()
    assert world.sent() == ["Alice said, hello"]
