"""Engine failover: which failures make the fallback speak, what the caller learns (who spoke, why), what is
cached under whose name, and how the primary is asked again. Engines here are fakes at the SpeechBackend seam;
the cache is the real one. The same paths end to end, with real engines: tests/e2e/test_realtime.py."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from bot.audio.formats import AudioFormat
from bot.speech.cache import AudioCache, Origin
from bot.speech.errors import (
    SpeechAuthError,
    SpeechConnectionError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechRewordedError,
    SpeechServiceError,
    SpeechTimeoutError,
    SpeechUnavailableError,
    SpeechValidationError,
)
from bot.speech.failover import ALL_SWITCHED_OFF, Engine, FailoverReason, FailoverSpeech, failover_reason
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SynthesizedAudio, read_all


class Backend:
    """Says ``<name>:<text>``; ``errors`` are raised first, one per request."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.requests: list[str] = []
        self.errors: list[SpeechError] = []

    async def open(self, request: SpeechRequest) -> BufferedSpeechStream:
        self.requests.append(request.text)
        if self.errors:
            raise self.errors.pop(0)
        data = f"{self.name}:{request.text}".encode()  # raw pcm of whole samples: intact audio as far as it goes
        return BufferedSpeechStream(SynthesizedAudio(data + b"\0" * (len(data) % 2), AudioFormat.PCM))

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Observer:
    def __init__(self) -> None:
        self.failovers: list[tuple[str, str]] = []

    def tokens_used(self, *args: object) -> None:
        return None

    def transcript_checked(self, *args: object) -> None:
        return None

    def failed_over(self, engine: str, reason: str) -> None:
        self.failovers.append((engine, reason))


class World:
    def __init__(self, *, fallback: bool = True, disabled: set[str] | None = None) -> None:
        self.disabled: set[str] = disabled if disabled is not None else set()
        self.primary, self.local = Backend("api"), Backend("local")
        self.clock, self.observer = Clock(), Observer()
        engines = [Engine("realtime", "the speech service", "realtime:https://api:m", self.primary)]
        if fallback:
            engines.append(Engine("local", "the offline voice", "local:piper", self.local))
        self.speech = FailoverSpeech(AudioCache(self.primary, namespace="realtime:https://api:m"), engines,
                                     observer=self.observer, rest=60, clock=self.clock,
                                     disabled=lambda: self.disabled)

    async def say(self, text: str = "hello") -> tuple[bytes, object]:
        served = await self.speech.open_tracked(SpeechRequest(text=text, voice="marin"))
        return (await read_all(served.stream)).data.rstrip(b"\0"), served  # without the fakes' padding


OUTAGE = [SpeechConnectionError("unreachable", retryable=True), SpeechServiceError("5xx", status=503),
          SpeechServiceError("breaker open", retryable=True), SpeechTimeoutError("slow", retryable=True),
          SpeechTimeoutError("408", status=408)]
MODEL_GONE = [SpeechRejectedError("not found", status=404), SpeechRejectedError("x", status=400, code="invalid_model"),
              SpeechRejectedError("x", status=400, code="model_not_found"),
              SpeechRejectedError("rejected", status=400, detail="The model `tts-1` has been deprecated."),
              SpeechRejectedError("rejected", status=400, detail="The model 'x' does not exist.")]
NO_CREDIT = [SpeechRateLimitError("out of credit", status=429, code="insufficient_quota")]
NEVER = [SpeechValidationError("bad speed"), SpeechRejectedError("bad input", status=400, detail="Invalid voice."),
         SpeechAuthError("bad key", status=401), SpeechAuthError("region", status=403),
         SpeechRejectedError("policy", status=400, code="content_filter"),
         SpeechRateLimitError("busy", status=429, code="rate_limit_exceeded", retryable=True),
         SpeechServiceError("not audio", status=200), SpeechRewordedError("reworded", status=200)]


@pytest.mark.parametrize(
    ("error", "reason"),
    [*((e, FailoverReason.OUTAGE) for e in OUTAGE), *((e, FailoverReason.MODEL_GONE) for e in MODEL_GONE),
     *((e, FailoverReason.NO_CREDIT) for e in NO_CREDIT), *((e, None) for e in NEVER)],
)
def test_which_failures_make_another_engine_speak(error: SpeechError, reason: FailoverReason | None) -> None:
    assert failover_reason(error) is reason


async def test_the_primary_speaks_when_it_can() -> None:
    world = World()
    data, served = await world.say()
    assert data == b"api:hello" and served.origin is Origin.SENT and not served.fallback
    assert served.note("marin") is None and world.local.requests == [] and world.observer.failovers == []


@pytest.mark.parametrize("error", [OUTAGE[0], MODEL_GONE[0], NO_CREDIT[0]])
async def test_the_fallback_speaks_and_the_caller_learns_who_and_why(error: SpeechError) -> None:
    world = World()
    world.primary.errors = [error]
    data, served = await world.say()
    assert data == b"local:hello" and served.fallback and served.origin is Origin.SENT
    reason = failover_reason(error)
    assert served.engine.name == "local" and served.reason is reason
    assert served.note("marin") == f"Said by the offline voice instead of marin, because {reason.because}."
    assert world.observer.failovers == [("local", reason.value)]


@pytest.mark.parametrize("error", NEVER)
async def test_bad_input_a_rejected_key_a_refusal_or_a_busy_service_reach_the_user(error: SpeechError) -> None:
    world = World()
    world.primary.errors = [error]
    with pytest.raises(SpeechError) as info:
        await world.say()
    assert info.value is error and world.local.requests == []


async def test_audio_is_cached_under_the_engine_that_made_it() -> None:
    world = World()
    world.primary.errors = [OUTAGE[0], OUTAGE[0]]
    first, _ = await world.say()
    again, served = await world.say()  # the primary is still down: the offline audio, from the cache
    assert first == again == b"local:hello" and served.origin is Origin.MEMORY and world.local.requests == ["hello"]
    recovered, served = await world.say()  # back: the service's own audio, never the offline one
    assert recovered == b"api:hello" and not served.fallback
    cached, served = await world.say()
    assert cached == b"api:hello" and served.origin is Origin.MEMORY
    assert world.primary.requests == ["hello"] * 3


async def test_a_primary_whose_model_is_gone_rests_but_its_cached_audio_still_serves() -> None:
    world = World()
    await world.say("cached")
    world.primary.errors = [MODEL_GONE[0]]
    assert (await world.say("new"))[0] == b"local:new"
    assert (await world.say("other"))[0] == b"local:other"  # not asked while it rests
    assert (await world.say("cached"))[0] == b"api:cached"  # its audio made before is still its own
    assert world.primary.requests == ["cached", "new"]
    world.clock.now += 61
    assert (await world.say("later"))[0] == b"api:later"  # asked again after the rest
    assert world.primary.requests == ["cached", "new", "later"]


async def test_an_outage_is_asked_about_every_time_the_breaker_lets_it(caplog: pytest.LogCaptureFixture) -> None:
    world = World()
    world.primary.errors = [OUTAGE[0]] * 3
    caplog.set_level(logging.INFO, logger="bot.speech.failover")
    for text in ("a", "b", "c"):
        assert (await world.say(text))[0] == f"local:{text}".encode()
    assert world.primary.requests == ["a", "b", "c"]
    assert (await world.say("d"))[0] == b"api:d"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "outage" in warnings[0].getMessage()  # told once per episode
    assert any("serves again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert world.observer.failovers == [("local", "outage")] * 3
    assert all("hello" not in r.getMessage() and r.getMessage() != "a" for r in caplog.records)


async def test_when_the_fallback_fails_too_the_primarys_error_is_raised() -> None:
    world = World()
    world.primary.errors = [NO_CREDIT[0]]
    world.local.errors = [SpeechError("the offline engine failed")]
    with pytest.raises(SpeechRateLimitError) as info:
        await world.say()
    assert "out of credit" in info.value.user_message


async def test_without_a_fallback_every_error_reaches_the_user() -> None:
    world = World(fallback=False)
    world.primary.errors = [OUTAGE[0]]
    with pytest.raises(SpeechConnectionError):
        await world.say()


async def test_a_whole_file_that_was_reworded_is_asked_for_once_more() -> None:
    world = World()

    class Reworded(BufferedSpeechStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[override]
            yield b"sure! here is"
            raise SpeechRewordedError("reworded", status=200)

    opened = []
    real_open = world.primary.open

    async def open_once_reworded(request: SpeechRequest) -> BufferedSpeechStream:
        opened.append(request.text)
        if len(opened) == 1:
            return Reworded(SynthesizedAudio(b"", AudioFormat.OPUS))
        return await real_open(request)

    world.primary.open = open_once_reworded  # type: ignore[method-assign]
    audio, served = await world.speech.read_whole(SpeechRequest(text="hello", voice="marin"))
    assert audio.data.rstrip(b"\0") == b"api:hello" and opened == ["hello", "hello"] and served.origin is Origin.SENT


async def test_an_engine_switched_off_is_skipped_cache_included_until_switched_back_on() -> None:
    world = World()
    await world.say("cached")  # the primary's audio is in the cache
    world.disabled.add("realtime")
    data, served = await world.say("cached")
    assert data == b"local:cached" and served.reason is FailoverReason.SWITCHED_OFF
    assert served.note("marin") == (
        "Said by the offline voice instead of marin, because the bot's owner switched it off for now.")
    assert world.primary.requests == ["cached"] and not world.speech.has(SpeechRequest(text="cached", voice="marin"))
    assert world.observer.failovers == [("local", "switched_off")]

    world.disabled.clear()
    data, served = await world.say("again")
    assert data == b"api:again" and not served.fallback


async def test_with_every_engine_switched_off_nothing_is_sent_and_the_caller_is_told() -> None:
    world = World(disabled={"realtime", "local"})
    with pytest.raises(SpeechUnavailableError) as raised:
        await world.say()
    assert raised.value.user_message == ALL_SWITCHED_OFF
    assert world.primary.requests == [] and world.local.requests == []


async def test_a_switched_off_fallback_is_not_asked_when_the_primary_fails() -> None:
    world = World(disabled={"local"})
    world.primary.errors.append(SpeechServiceError("5xx", status=503))
    with pytest.raises(SpeechServiceError):
        await world.say()
    assert world.local.requests == []
