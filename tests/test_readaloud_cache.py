"""The synthesis cache: one request per distinct (model, voice, speed, format, instructions, text)."""

from __future__ import annotations

import asyncio


from bot.audio.formats import AudioFormat
from bot.readaloud.cache import SynthesisCache
from bot.speech.errors import SpeechError
from bot.speech.models import BufferedSpeechStream, SpeechRequest, SynthesizedAudio


class CountingBackend:
    """Answers with the request text as bytes after ``release`` is set; counts what it was asked."""

    name = "counting"

    def __init__(self, *, fail: bool = False) -> None:
        self.requests: list[SpeechRequest] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = fail

    async def open(self, request: SpeechRequest) -> BufferedSpeechStream:
        self.requests.append(request)
        await self.release.wait()
        if self.fail:
            raise SpeechError("down")
        return BufferedSpeechStream(SynthesizedAudio(request.text.encode() * 10, AudioFormat.OPUS))

    async def close(self) -> None:
        return None


def request(text: str = "hello", **changes: object) -> SpeechRequest:
    fields: dict[str, object] = {"text": text, "voice": "alloy", "format": AudioFormat.OPUS, **changes}
    return SpeechRequest(**fields)  # type: ignore[arg-type]


async def test_identical_requests_are_sent_once_and_any_difference_is_a_new_request() -> None:
    backend = CountingBackend()
    cache = SynthesisCache(backend, "tts-1")
    first, sent = await cache.get(request())
    again, sent_again = await cache.get(request())
    assert (sent, sent_again) == (True, False) and again is first
    for other in (request("hello!"), request(voice="echo"), request(speed=1.5), request(instructions="calm"),
                  request(format=AudioFormat.WAV)):
        assert (await cache.get(other))[1] is True
    assert len(backend.requests) == 6
    assert cache.stats.hits == 1 and cache.stats.misses == 6


async def test_the_model_is_part_of_the_key() -> None:
    backend = CountingBackend()
    await SynthesisCache(backend, "tts-1").get(request())
    await SynthesisCache(backend, "tts-1-hd").get(request())
    assert len(backend.requests) == 2


async def test_requests_in_flight_are_shared() -> None:
    backend = CountingBackend()
    backend.release.clear()
    cache = SynthesisCache(backend, "tts-1")
    calls = [asyncio.create_task(cache.get(request())) for _ in range(3)]
    await asyncio.sleep(0.01)
    backend.release.set()
    results = await asyncio.gather(*calls)
    assert len(backend.requests) == 1
    assert sorted(sent for _, sent in results) == [False, False, True]


async def test_failures_reach_every_waiter_and_are_not_cached() -> None:
    backend = CountingBackend(fail=True)
    backend.release.clear()
    cache = SynthesisCache(backend, "tts-1")
    calls = [asyncio.create_task(cache.get(request())) for _ in range(2)]
    await asyncio.sleep(0.01)
    backend.release.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, SpeechError) for result in results)
    backend.fail = False
    assert (await cache.get(request()))[1] is True and len(backend.requests) == 2


async def test_memory_is_bounded_least_recently_used_first_out() -> None:
    backend = CountingBackend()
    cache = SynthesisCache(backend, "tts-1", max_bytes=100)  # each answer is 10 × the text
    for text in ("aaaa", "bbbb", "cccc"):
        await cache.get(request(text))
    await cache.get(request("aaaa"))  # used again: now the most recent
    await cache.get(request("dddd"))  # evicts "bbbb"
    assert cache.stats.bytes <= 100
    assert (await cache.get(request("aaaa")))[1] is False
    assert (await cache.get(request("bbbb")))[1] is True
    assert (await cache.get(request("x" * 20)))[1] is True and cache.stats.bytes <= 100  # too big: not kept
