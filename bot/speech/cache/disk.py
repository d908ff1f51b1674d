"""The cache's disk tier on its own: the file format and the blocking file operations, no bounds, no order.

Kept apart from :class:`~bot.speech.cache.AudioCache` (which decides what to keep, and runs these in worker
threads) so that the file format (a header naming the key, format, length and checksum of the audio, checked on
every read) is read and tested in one place.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from bot.audio.formats import AudioFormat
from bot.speech.models import SynthesizedAudio

log = logging.getLogger(__name__)

#: Temporary files older than this at start-up were left by a crash (a younger one may belong to another
#: process sharing the directory, still writing).
_STALE_TEMP_SECONDS = 600.0

_MAGIC = b"SBAUDIO1"
#: magic, the key's SHA-256, the format's name (NUL-padded), the audio's length and its SHA-256.
_HEADER = struct.Struct(">8s32s8sQ32s")
_SUFFIX = ".audio"
_TEMP_SUFFIX = ".tmp"
#: Bytes a file holds besides the audio (its header).
ENTRY_OVERHEAD = _HEADER.size


class DiskStore:
    """Blocking file operations on the cache directory; :class:`AudioCache` runs them in worker threads.

    Layout: ``<dir>/<first two hex digits>/<hex key>.audio``. Nothing here knows about bounds or order.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, digest: str) -> Path:
        return self.directory / digest[:2] / f"{digest}{_SUFFIX}"

    def scan(self) -> list[tuple[str, int, int]]:
        """Every entry as (key, bytes, mtime in ns), oldest first; removes stale temporary and foreign files."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entries: list[tuple[str, int, int]] = []
        now = time.time()
        for sub in os.scandir(self.directory):
            if not (sub.is_dir(follow_symlinks=False) and _is_hex(sub.name, 2)):
                continue
            for item in os.scandir(sub.path):
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                name = item.name
                digest = name.removesuffix(_SUFFIX)
                if name.endswith(_SUFFIX) and _is_hex(digest, 64) and digest[:2] == sub.name and item.is_file():
                    if stat.st_size > _HEADER.size:
                        entries.append((digest, stat.st_size, stat.st_mtime_ns))
                        continue
                elif name.endswith(_TEMP_SUFFIX) and now - stat.st_mtime < _STALE_TEMP_SECONDS:
                    continue  # another process may be writing it right now
                with contextlib.suppress(OSError):
                    os.unlink(item.path)  # a partial write, an empty file, or something that is not ours
        entries.sort(key=lambda entry: (entry[2], entry[0]))
        return entries

    def read(self, digest: str) -> tuple[SynthesizedAudio, int] | None:
        """The entry and its file size, or None when absent. A damaged file is removed (and None returned).
        A hit touches the file, so the least recently used order survives a restart."""
        path = self.path(digest)
        try:
            blob = path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        audio = _decode(blob, digest)
        if audio is None:
            log.warning("audio cache: removed a damaged cache file")
            with contextlib.suppress(OSError):
                path.unlink()
            return None
        with contextlib.suppress(OSError):
            _touch(path)
        return audio, len(blob)

    def write(self, digest: str, audio: SynthesizedAudio) -> int:
        """Write atomically (temporary file, then rename); returns the file's size. Raises OSError."""
        path = self.path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = _encode(digest, audio)
        temp = path.with_name(f"{digest}.{secrets.token_hex(4)}{_TEMP_SUFFIX}")
        try:
            with open(temp, "wb") as file:
                file.write(blob)
            _touch(temp)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        return len(blob)

    def remove(self, digests: Iterable[str]) -> None:
        for digest in digests:
            with contextlib.suppress(OSError):
                self.path(digest).unlink()


def _encode(digest: str, audio: SynthesizedAudio) -> bytes:
    fmt = audio.format.value.encode()
    header = _HEADER.pack(_MAGIC, bytes.fromhex(digest), fmt, len(audio.data), hashlib.sha256(audio.data).digest())
    return header + audio.data


def _decode(blob: bytes, digest: str) -> SynthesizedAudio | None:
    if len(blob) < _HEADER.size:
        return None
    magic, key, fmt, length, checksum = _HEADER.unpack_from(blob)
    data = blob[_HEADER.size :]
    if magic != _MAGIC or key != bytes.fromhex(digest) or length != len(data) or length == 0:
        return None
    try:
        audio_format = AudioFormat(fmt.rstrip(b"\0").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if hashlib.sha256(data).digest() != checksum:
        return None
    return SynthesizedAudio(data, audio_format)


def _touch(path: Path) -> None:
    """Set the file's times to now, to the nanosecond: the kernel's own stamps are coarse (a few ms), too
    coarse to order entries used in quick succession."""
    now = time.time_ns()
    os.utime(path, ns=(now, now))


def _is_hex(name: str, length: int) -> bool:
    return len(name) == length and all(c in "0123456789abcdef" for c in name)
