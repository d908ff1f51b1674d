"""Measuring, once and in the background, what an endpoint really does with ``speed`` and ``voice``.

Servers accept both fields and may ignore them (local-tts-studio speaks its configured voice at its configured
speed whatever is asked), clamp or refuse speeds outside their range (loudness-tts takes 0.5-2), or have one
voice under every name. Nothing in their answers says so; the audio does. One short phrase is synthesized at
1×, then outward towards each end of the range the bot offers (2× and 4×, 0.5× and 0.25×) while the duration
keeps changing; and with a second voice, compared with the first. At most eight short syntheses, never on a
user's request path, never on a paid endpoint unless ``SPEECH_PROBE=on`` (see ``Settings.probes_endpoint``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from bot.audio.decode import AudioDecodeError, decode_to_pcm, duration_seconds
from bot.audio.formats import AudioFormat
from bot.speech.capabilities import EndpointCapabilities
from bot.speech.catalog import SpeedRange
from bot.speech.errors import SpeechError, SpeechRejectedError
from bot.speech.models import SpeechBackend, SpeechRequest, SynthesizedAudio, synthesize
from bot.tasks import Supervisor

log = logging.getLogger(__name__)

#: What is said: long enough that a speed change shows in the duration, short enough to cost next to nothing.
PHRASE = "One, two, three, four, five, six."
#: The steps tried from 1× outward on each side, clipped to the range the bot offers.
FAST_STEPS = (2.0, 4.0)
SLOW_STEPS = (0.5, 0.25)
#: A step counts only if the duration moved by at least this fraction of the previous step's, in the direction
#: asked. Honoured steps move it by far more (piper, which rounds phonemes up to whole frames: 2× is 0.59 of 1×,
#: 4× 0.62 of 2×, 0.5× 1.86 of 1×); sampling noise moves it too: loudness-tts, clamping 4× to 2×, gave 2× and
#: 4× durations anywhere in 1.91-2.05 s over 25 tries each, so a 6% threshold once took the clamped 4× as honoured.
SAME_DURATION = 0.15
#: How many voices after the first are tried for the comparison (a listed voice may not be installed).
OTHER_VOICES = 2
#: Two voices whose decoded audio differs by less than this (RMS of the difference over RMS of the first) are one.
SAME_VOICE = 0.05


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What was measured: the honoured speeds (None: not measured) and whether voices differ (None: not measured)."""

    speeds: SpeedRange | None
    voice_honoured: bool | None


class _Refused(Exception):
    """The endpoint refused this speed (a 4xx): it does not do it."""


async def probe_endpoint(
    backend: SpeechBackend, voices: Sequence[str], offered: SpeedRange, *, measure_speed: bool = True
) -> ProbeResult:
    """Measure ``backend`` (module docstring). A failure other than a refused speed raises SpeechError."""
    voice = voices[0]

    async def seconds(speed: float) -> float:
        audio = await _say(backend, voice, speed)
        return await asyncio.to_thread(duration_seconds, audio.data, audio.format)

    base_audio = await _say(backend, voice, 1.0)
    speeds = None
    if measure_speed:
        base = await asyncio.to_thread(duration_seconds, base_audio.data, base_audio.format)
        high = await _honoured_end(seconds, base, [s for s in FAST_STEPS if s <= offered.high])
        low = await _honoured_end(seconds, base, [s for s in SLOW_STEPS if s >= offered.low])
        speeds = SpeedRange(low, high)
    honoured = None
    for other_voice in voices[1:1 + OTHER_VOICES]:
        try:
            other = await _say(backend, other_voice, 1.0)
        except SpeechError as error:  # a listed voice it cannot speak (not downloaded): try the next one
            log.info("measuring voices: %s failed (%s)", other_voice, error.detail or error.user_message)
            continue
        honoured = not await asyncio.to_thread(same_sound, base_audio, other)
        break
    return ProbeResult(speeds, honoured)


async def _say(backend: SpeechBackend, voice: str, speed: float) -> SynthesizedAudio:
    # wav: every server makes it (Piper servers without ffmpeg make nothing else), and its length is exact; not a
    # playback request, so what voice playback gets (``capabilities.playback_format``) is left as it is
    request = SpeechRequest(PHRASE, voice, AudioFormat.WAV, speed=speed)
    try:
        return await synthesize(backend, request)
    except SpeechRejectedError as error:
        if speed != 1.0 and error.status is not None and 400 <= error.status < 500:
            raise _Refused from None
        raise


async def _honoured_end(measure: Callable[[float], Awaitable[float]], base: float, steps: Sequence[float]) -> float:
    """The last step from 1× outward whose duration still changed the way it asks (faster: shorter, slower: longer)
    by more than noise (1.0: the first step changed nothing)."""
    honoured, previous = 1.0, base
    for speed in steps:
        try:
            duration = await measure(speed)
        except _Refused:
            break
        if previous <= 0:
            break
        moved = (previous - duration if speed > 1.0 else duration - previous) / previous  # the way asked
        if moved < SAME_DURATION:
            break
        honoured, previous = speed, duration
    return honoured


def same_sound(first: SynthesizedAudio, second: SynthesizedAudio) -> bool:
    """Whether two syntheses are the same audio: identical bytes, or decoded samples that barely differ."""
    if first.data == second.data:
        return True
    try:
        a = np.frombuffer(decode_to_pcm(first.data, first.format, rate=24_000), dtype="<i2").astype(np.float64)
        b = np.frombuffer(decode_to_pcm(second.data, second.format, rate=24_000), dtype="<i2").astype(np.float64)
    except AudioDecodeError:
        return False
    if not len(a) or abs(len(a) - len(b)) > 0.02 * len(a):
        return False
    n = min(len(a), len(b))
    energy = float(np.sqrt(np.mean(a[:n] ** 2)))
    return energy > 0 and float(np.sqrt(np.mean((a[:n] - b[:n]) ** 2))) / energy < SAME_VOICE


class CapabilityProbe:
    """Runs :func:`probe_endpoint` once after start, records the result and warns the operator (one WARNING line
    per finding, saying what to change)."""

    def __init__(
        self, backend: SpeechBackend, capabilities: EndpointCapabilities, offered: SpeedRange, where: str
    ) -> None:
        self._backend = backend
        self._capabilities = capabilities
        self._offered = offered
        self._where = where
        self._tasks = Supervisor("capability probe")
        self.done = asyncio.Event()

    def start(self) -> None:
        self._tasks.spawn(self.run(), name="capability-probe")

    async def close(self) -> None:
        await self._tasks.close()

    async def run(self) -> None:
        caps = self._capabilities
        try:
            result = await probe_endpoint(self._backend, caps.voices, self._offered,
                                          measure_speed=not caps.speeds_declared)
        except SpeechError as error:
            caps.probe_note = f"the measuring failed: {error.user_message}"
            log.warning("could not measure the speech service's speeds and voices: %s (%s)",
                        error.user_message, error.detail)
        else:
            self.record(result)
        finally:
            self.done.set()

    def record(self, result: ProbeResult) -> None:
        caps, where = self._capabilities, self._where
        if result.speeds is not None:
            caps.speeds = result.speeds
            if result.speeds.low == result.speeds.high == 1.0:
                log.warning("the speech service at %s ignores speed (every speed lasts as long as 1×); users asking "
                            "for another speed are told. Use a server that honours speed, or if this is wrong set "
                            "SPEECH_SPEED_RANGE.", where)
            elif result.speeds != self._offered:
                log.warning("the speech service at %s honours speeds from %s only (measured), not %s; users asking "
                            "outside are told. To declare it instead: SPEECH_SPEED_RANGE=%g-%g.",
                            where, result.speeds, self._offered, result.speeds.low, result.speeds.high)
            else:
                log.info("the speech service at %s honours speeds from %s (measured)", where, result.speeds)
        caps.voice_honoured = result.voice_honoured
        if result.voice_honoured is False:
            log.warning("every voice of the speech service at %s sounds the same (%s and another voice gave the same "
                        "audio), so choosing a voice changes nothing. Configure voices on the server, or set "
                        "SPEECH_VOICES to one voice.", where, caps.voices[0])
