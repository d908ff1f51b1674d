"""Test helpers that check audio by ear: decode, duration sanity and closed-grammar speech recognition.

Open-vocabulary recognition of synthetic speech is unreliable, but a JSGF grammar listing only the expected
phrases makes pocketsphinx an exact oracle (measured 10/10 on piper joe through Ogg Opus; speech-api.md §8).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import av
import numpy as np

from bot.audio.decode import decode_to_pcm, duration_seconds
from bot.audio.formats import AudioFormat

__all__ = [
    "assert_duration_plausible", "decode_to_pcm", "duration_seconds", "recognize", "recognize_audio", "to_16k_mono",
]

#: pocketsphinx's acoustic model wants 16 kHz mono s16le.
RECOGNIZER_RATE = 16_000

#: Speaking rates (words per second) that a voice at speed 1.0 plausibly falls within; piper joe says about
#: 2.5-3.5, padded for short phrases where leading and trailing silence weigh more.
MIN_WORDS_PER_SECOND = 1.0
MAX_WORDS_PER_SECOND = 6.0


def to_16k_mono(stereo_48k: np.ndarray) -> bytes:
    """Interleaved 48 kHz stereo s16 (what the loopback voice channel decodes) as the recognizer wants it."""
    frame = av.AudioFrame.from_ndarray(stereo_48k.reshape(1, -1), format="s16", layout="stereo")
    frame.sample_rate = 48_000
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RECOGNIZER_RATE)
    return b"".join(bytes(f.planes[0])[: f.samples * 2] for f in resampler.resample(frame) + resampler.resample(None))


def recognize(pcm_16k_mono: bytes, phrases: list[str]) -> str | None:
    """Which of ``phrases`` (lowercase words in the CMU dictionary) ``pcm_16k_mono`` says, or None.

    A fresh decoder per call, because cepstral normalisation carries over between utterances otherwise.
    """
    from pocketsphinx import Decoder

    with tempfile.TemporaryDirectory() as tmp:
        grammar = Path(tmp, "phrases.gram")
        grammar.write_text(_jsgf(phrases), encoding="ascii")
        decoder = Decoder(samprate=RECOGNIZER_RATE, jsgf=str(grammar), loglevel="FATAL")
        decoder.start_utt()
        decoder.process_raw(pcm_16k_mono, full_utt=True)
        decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else None


def recognize_audio(data: bytes, fmt: AudioFormat, phrases: list[str]) -> str | None:
    """:func:`recognize` for an encoded body: decode it to 16 kHz mono first."""
    return recognize(decode_to_pcm(data, fmt, rate=RECOGNIZER_RATE, channels=1), phrases)


def assert_duration_plausible(seconds: float, text: str, speed: float = 1.0) -> None:
    """Fail unless ``seconds`` of speech is a believable length for saying ``text`` at ``speed``."""
    words = len(text.split())
    low = words / (MAX_WORDS_PER_SECOND * speed)
    high = words / (MIN_WORDS_PER_SECOND * speed) + 0.5
    assert low <= seconds <= high, (
        f"{seconds:.2f} s for {words} words at speed {speed}: expected {low:.2f}-{high:.2f} s"
    )


def _jsgf(phrases: list[str]) -> str:
    for phrase in phrases:
        if not re.fullmatch(r"[a-z']+( [a-z']+)*", phrase):
            raise ValueError(f"grammar phrases must be lowercase words separated by spaces: {phrase!r}")
    alternatives = " | ".join(f"( {phrase} )" for phrase in phrases)
    return f"#JSGF V1.0;\ngrammar phrases;\npublic <phrase> = {alternatives} ;\n"
