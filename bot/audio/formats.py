"""Audio formats the bot handles, and sniffing them from bytes.

Peers label the same audio differently (``audio/opus``, ``audio/ogg``, ``audio/ogg;codec=opus``) and some
answer WAV whatever was asked, so the real format is always read from the magic bytes.
"""

from __future__ import annotations

from enum import StrEnum


class AudioFormat(StrEnum):
    """A ``response_format`` of the speech contract (plus mp3, which peers may send back)."""

    OPUS = "opus"
    WAV = "wav"
    FLAC = "flac"
    AAC = "aac"
    PCM = "pcm"
    MP3 = "mp3"

    @property
    def extension(self) -> str:
        """File extension for an upload of this format."""
        return _EXTENSIONS[self]

    @property
    def mime_type(self) -> str:
        return _MIME_TYPES[self]


#: The formats a user may ask for (the product contract: wav/opus/aac/flac/pcm; mp3 is not offered because
#: the default reseller does not list it).
REQUESTABLE_FORMATS: tuple[AudioFormat, ...] = (
    AudioFormat.OPUS,
    AudioFormat.WAV,
    AudioFormat.FLAC,
    AudioFormat.AAC,
    AudioFormat.PCM,
)

_EXTENSIONS = {
    AudioFormat.OPUS: "opus",
    AudioFormat.WAV: "wav",
    AudioFormat.FLAC: "flac",
    AudioFormat.AAC: "aac",
    AudioFormat.PCM: "pcm",
    AudioFormat.MP3: "mp3",
}

_MIME_TYPES = {
    AudioFormat.OPUS: "audio/ogg",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.FLAC: "audio/flac",
    AudioFormat.AAC: "audio/aac",
    AudioFormat.PCM: "audio/L16",
    AudioFormat.MP3: "audio/mpeg",
}

#: Bytes needed to tell every container apart.
SNIFF_BYTES = 12

#: ``pcm`` from the OpenAI contract: raw s16le, mono, 24 kHz, no header.
PCM_SAMPLE_RATE = 24_000


def sniff(head: bytes) -> AudioFormat | None:
    """Return the container of ``head`` (the first bytes of a body), or None if it is not recognised.

    Headerless ``pcm`` cannot be recognised from bytes; callers that asked for pcm treat an unrecognised
    body as pcm only when it does not look like text (see :func:`looks_like_text`).
    """
    if head.startswith(b"OggS"):
        return AudioFormat.OPUS
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return AudioFormat.WAV
    if head.startswith(b"fLaC"):
        return AudioFormat.FLAC
    if head.startswith(b"ID3"):
        return AudioFormat.MP3
    if len(head) >= 2 and head[0] == 0xFF:
        second = head[1]
        if second in (0xF1, 0xF9):
            return AudioFormat.AAC
        if second & 0xE0 == 0xE0:
            return AudioFormat.MP3
    return None


def looks_like_text(head: bytes) -> bool:
    """True when ``head`` is plausibly JSON/HTML/plain text rather than audio (a proxy's error page, say)."""
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"[", b"<"):
        return True
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(text) and all(c.isprintable() or c in "\r\n\t" for c in text)
