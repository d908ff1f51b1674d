"""What checking a whole body costs before it is uploaded or cached (``bot.audio.validate.check_audio``), per
second of audio, against decoding the same body to PCM (``bot.audio.decode.decode_to_pcm``) in the same run.

Run: ``python bench/bench_audio_check.py [repeats]``. The audio is 10 s of offline speech (piper joe) at
24 kHz mono, encoded to each format as an endpoint sends it; CPU time is ``time.process_time``, best of
``repeats``. The check runs in a worker thread (``asyncio.to_thread``), so this is CPU, not event-loop time.
"""

from __future__ import annotations

import sys
import time

from bot.audio.decode import decode_to_pcm
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.validate import check_audio
from bot.speech.local import LocalSpeechEngine

SECONDS = 10.0
TEXT = ("Please join the voice channel. The quick brown fox jumps over the lazy dog. Good morning everyone, "
        "the weather is nice today. Thank you for listening, and see you tomorrow.")


def speech_pcm() -> tuple[bytes, int]:
    """Piper speech as 24 kHz mono s16le, repeated or cut to ``SECONDS``."""
    import asyncio

    from bot.speech.models import SpeechRequest, synthesize

    engine = LocalSpeechEngine(("joe",))
    audio = asyncio.run(synthesize(engine, SpeechRequest(TEXT, "joe", AudioFormat.PCM)))
    need = int(SECONDS * 24_000) * 2
    pcm = (audio.data * (need // len(audio.data) + 1))[:need]
    return pcm, 24_000


def best(call: object, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        call()  # type: ignore[operator]
        times.append(time.process_time() - start)
    return min(times)


def main(repeats: int = 5) -> None:
    pcm, rate = speech_pcm()
    print(f"{'format':<8} {'check ms/s':>11} {'decode ms/s':>12} {'check/decode':>13}")
    for fmt in (AudioFormat.OPUS, AudioFormat.WAV, AudioFormat.FLAC, AudioFormat.AAC, AudioFormat.PCM):
        body = encode_pcm(pcm, rate, fmt)
        check = best(lambda body=body, fmt=fmt: check_audio(body, fmt), repeats) / SECONDS * 1000
        decode = best(lambda body=body, fmt=fmt: decode_to_pcm(body, fmt, rate=24_000), repeats) / SECONDS * 1000
        print(f"{fmt.value:<8} {check:11.3f} {decode:12.3f} {check / decode:13.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
