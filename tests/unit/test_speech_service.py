"""``bot.speech_service`` and ``bot.usage``: admission, reservations and settling, on a real SQLite store and a
real audio cache, with an engine double that answers in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from bot.audio.formats import AudioFormat
from bot.config import load_settings
from bot.errors import UserFacingError
from bot.metrics import Metrics
from bot.policy import Policy
from bot.speech.cache import AudioCache
from bot.speech.errors import SpeechServiceError, SpeechValidationError
from bot.speech.failover import Engine, FailoverSpeech
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SpeechStream, SynthesizedAudio
from bot.speech_service import SpeechService
from bot.storage import Store
from bot.usage import UsageLedger
from tests.support.metrics import sample

GUILD, ALICE, BOB = 1, 10, 11
DAY = date(2026, 12, 2)


class Engine_:
    """A speech engine that answers at once with a few bytes of Ogg (or fails when told to)."""

    name = "openai"

    def __init__(self) -> None:
        self.requests: list[SpeechRequest] = []
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def open(self, request: SpeechRequest) -> SpeechStream:
        self.requests.append(request)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise SpeechServiceError("The speech service is having problems.", status=503)
        data = request.text.encode()
        return BufferedSpeechStream(SynthesizedAudio(data + b"\0" * (len(data) % 2), AudioFormat.PCM))

    async def close(self) -> None:
        return None


@pytest.fixture
def metrics() -> Metrics:
    """The bot's metrics, which the ledger of ``service`` reports budget use to."""
    return Metrics()


@pytest.fixture
async def service(tmp_path: Path, metrics: Metrics) -> AsyncIterator[tuple[SpeechService, Engine_, Store]]:
    settings = load_settings({"DATA_DIR": str(tmp_path), "SPEECH_VOICES": "alloy,echo", "SPEECH_FALLBACK": "none"})
    store = await Store.open(f"sqlite:///{tmp_path / 'db.sqlite'}")
    engine = Engine_()
    speech = FailoverSpeech(AudioCache(engine, namespace="tts"),  # type: ignore[arg-type]
                            [Engine("openai", "the speech service", "tts", engine)])  # type: ignore[arg-type]
    ledger = UsageLedger(store, today=lambda: DAY, observer=metrics)
    yield SpeechService(speech, Policy(settings, store), ledger, settings), engine, store
    await ledger.close()
    await store.close()


async def used(store: Store) -> int:
    return (await store.usage_since(GUILD, DAY)).characters


async def test_fifty_concurrent_requests_against_room_for_three_admit_three(service) -> None:  # noqa: ANN001
    speaking, engine, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=30)
    engine.gate = asyncio.Event()  # nothing settles until every admission has been decided

    async def one(n: int) -> str:
        try:
            admitted = await speaking.admit(GUILD, ALICE, [], text=f"request {n:03d}")  # 11 characters each
        except UserFacingError:
            return "refused"
        audio, _ = await speaking.read_whole(admitted)
        return "spoken" if audio.data else "empty"

    tasks = [asyncio.create_task(one(n)) for n in range(50)]
    for _ in range(500):  # until each request is decided: refused (done) or waiting at the gate
        if sum(task.done() for task in tasks) + len(engine.requests) == len(tasks):
            break
        await asyncio.sleep(0.01)
    engine.gate.set()
    results = await asyncio.gather(*tasks)
    assert results.count("spoken") == 2 and results.count("refused") == 48  # 2 × 11 fit in 30, a third does not
    assert len(engine.requests) == 2 and await used(store) == 22


async def test_room_for_exactly_three(service) -> None:  # noqa: ANN001
    speaking, engine, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=33)
    engine.gate = asyncio.Event()
    admissions = await asyncio.gather(*(speaking.admit(GUILD, ALICE, [], text=f"request {n:03d}")
                                        for n in range(3)))
    with pytest.raises(UserFacingError, match=r"only 0 are left|used its daily"):
        await speaking.admit(GUILD, BOB, [], text="request 999")
    engine.gate.set()
    for admitted in admissions:
        await speaking.read_whole(admitted)
    assert await used(store) == 33


async def test_a_failed_request_gives_its_reservation_back_and_counts_nothing(service) -> None:  # noqa: ANN001
    speaking, engine, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=11)
    engine.fail = True
    admitted = await speaking.admit(GUILD, ALICE, [], text="request 001")
    with pytest.raises(SpeechServiceError):
        await speaking.read_whole(admitted)
    engine.fail = False
    await speaking.read_whole(await speaking.admit(GUILD, ALICE, [], text="request 002"))  # the room is back
    assert await used(store) == 11


async def test_a_request_released_before_it_is_opened_costs_nothing(service) -> None:  # noqa: ANN001
    speaking, _, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=11)
    admitted = await speaking.admit(GUILD, ALICE, [], text="request 001")
    speaking.release(admitted)  # e.g. a queued voice item cleared before it played
    speaking.release(admitted)  # idempotent
    await speaking.read_whole(await speaking.admit(GUILD, ALICE, [], text="request 002"))
    assert await used(store) == 11


async def test_cached_audio_is_neither_checked_nor_counted(service) -> None:  # noqa: ANN001
    speaking, engine, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=11)
    await speaking.read_whole(await speaking.admit(GUILD, ALICE, [], text="request 001"))
    again = await speaking.admit(GUILD, BOB, [], text="request 001")  # the budget is used up, but it is cached
    assert again.reservation is None
    _audio, served = await speaking.read_whole(again)
    assert not served.origin.sent and len(engine.requests) == 1 and await used(store) == 11


async def test_batched_usage_is_visible_to_the_budget_before_it_is_written(service) -> None:  # noqa: ANN001
    speaking, _engine, store = service
    guild = await store.update_guild_settings(GUILD, daily_char_budget=22)
    for n in range(2):
        admitted = await speaking.admit_request(GUILD, ALICE, speaking.validate(
            SpeechRequest(text=f"request {n:03d}", voice="alloy")), guild)
        await speaking.open(admitted, batched=True)
    assert await used(store) == 0  # not written yet
    with pytest.raises(UserFacingError):
        await speaking.admit(GUILD, ALICE, [], text="request 999")
    await speaking.ledger.flush()
    assert await used(store) == 22


async def test_mutes_roles_and_options_are_applied_before_anything_is_reserved(service) -> None:  # noqa: ANN001
    speaking, engine, store = service
    await store.mute(GUILD, BOB, by=ALICE)
    with pytest.raises(UserFacingError, match="muted"):
        await speaking.admit(GUILD, BOB, [], text="hello")
    await store.set_user_prefs(ALICE, GUILD, voice="echo")
    admitted = await speaking.admit(GUILD, ALICE, [], text="hello", format=AudioFormat.WAV)
    assert (admitted.request.voice, admitted.request.format) == ("echo", AudioFormat.WAV)
    with pytest.raises(SpeechValidationError, match="Unknown voice"):
        await speaking.admit(GUILD, ALICE, [], text="hello", voice="nova")
    assert engine.requests == []


async def test_budget_use_and_refusals_are_in_the_metrics(service, metrics: Metrics) -> None:  # noqa: ANN001
    speaking, _engine, store = service
    await store.update_guild_settings(GUILD, daily_char_budget=22, monthly_char_budget=1000)
    for n in range(2):
        await speaking.read_whole(await speaking.admit(GUILD, ALICE, [], text=f"request {n:03d}"))
    await speaking.read_whole(await speaking.admit(GUILD, BOB, [], text="request 000"))  # cached: not counted
    with pytest.raises(UserFacingError, match="daily"):
        await speaking.admit(GUILD, ALICE, [], text="request 999")
    text = metrics.render().decode()
    assert sample(text, "speechbot_budget_characters_total") == 22
    assert sample(text, "speechbot_budget_refusals_total", period="daily") == 1
    assert sample(text, "speechbot_budget_refusals_total", period="monthly") == 0
