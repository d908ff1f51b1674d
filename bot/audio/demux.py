"""Decode a compressed container (flac, ADTS aac, mp3) while its body is still arriving.

FFmpeg's demuxers pull bytes from a file, so a worker thread runs ``av.open()`` on a blocking, non-seekable pipe
that the caller fills chunk by chunk. After each chunk the caller waits until the worker has decoded everything
it can and is blocked waiting for more input: each ``feed`` then returns every frame those bytes allowed, and
the output does not depend on thread timing.

Measured lag: ADTS aac and mp3 frames come out as soon as they are complete; FFmpeg's FLAC parser confirms about
ten frame headers before it splits the first frame, so FLAC starts about 32 KiB of input late.
"""

from __future__ import annotations

import io
import threading

import av

from bot.audio.decode import AudioDecodeError

# Start decoding after the smallest probe FFmpeg allows instead of its default 5 MB / 5 s of input.
_OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "0"}
_IO_BUFFER_SIZE = 4096


class _Pipe(io.RawIOBase):
    """Bytes written by the caller, read by FFmpeg on the worker thread; reads block until data or the end."""

    def __init__(self, condition: threading.Condition) -> None:
        super().__init__()
        self._condition = condition
        self._data = bytearray()
        self._eof = False
        self.starved = False  # the reader is blocked waiting for bytes that were not written yet

    def readable(self) -> bool:
        return True

    # io.RawIOBase.readinto takes any writable buffer; PyAV only ever hands this pipe these two
    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        with self._condition:
            while not self._data and not self._eof:
                self.starved = True
                self._condition.notify_all()
                self._condition.wait()
            self.starved = False
            size = min(len(buffer), len(self._data))
            buffer[:size] = self._data[:size]
            del self._data[:size]
            return size

    def put(self, data: bytes) -> None:
        """Append bytes (caller holds the condition)."""
        self._data += data
        self.starved = False
        self._condition.notify_all()

    def end(self) -> None:
        """No more bytes: pending and future reads return end of file (caller holds the condition)."""
        self._eof = True
        self._condition.notify_all()

    @property
    def drained(self) -> bool:
        return self.starved and not self._data


class ThreadedDecoder:
    """Decode the first audio stream of a ``demuxer`` container (an FFmpeg name: "flac", "aac", "mp3").

    ``feed``, ``finish`` and ``close`` must be called from one thread at a time; the worker thread is private.
    """

    def __init__(self, demuxer: str) -> None:
        self._demuxer = demuxer
        self._condition = threading.Condition()
        self._pipe = _Pipe(self._condition)
        self._frames: list[av.AudioFrame] = []
        self._error: BaseException | None = None
        self._done = False
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name=f"decode-{demuxer}", daemon=True)
        self._thread.start()

    def feed(self, data: bytes) -> list[av.AudioFrame]:
        """Hand ``data`` to the worker; return the frames decoded once it has used all input so far."""
        with self._condition:
            self._pipe.put(data)
            while not (self._pipe.drained or self._done):
                self._condition.wait()
        return self._take()

    def finish(self) -> list[av.AudioFrame]:
        """End of body: let the worker decode the rest and return the remaining frames."""
        with self._condition:
            self._pipe.end()
        self._thread.join()
        return self._take()

    def close(self) -> None:
        """Stop the worker early (playback abandoned); it ends on its own at the pipe's end of file."""
        with self._condition:
            self._cancelled = True
            self._pipe.end()

    def _take(self) -> list[av.AudioFrame]:
        with self._condition:
            if isinstance(self._error, AudioDecodeError):
                raise self._error
            if self._error is not None:
                raise AudioDecodeError(f"the {self._demuxer} audio is corrupt or truncated") from self._error
            frames, self._frames = self._frames, []
        return frames

    def _run(self) -> None:
        try:
            with av.open(
                self._pipe, mode="r", format=self._demuxer, options=_OPEN_OPTIONS, buffer_size=_IO_BUFFER_SIZE
            ) as box:
                if not box.streams.audio:
                    raise AudioDecodeError(f"the {self._demuxer} body has no audio stream")
                for frame in box.decode(box.streams.audio[0]):
                    with self._condition:
                        if self._cancelled:
                            return
                        self._frames.append(frame)
        except Exception as exc:  # noqa: BLE001 - handed to the caller's thread by _take
            with self._condition:
                self._error = exc
        finally:
            with self._condition:
                self._done = True
                self._condition.notify_all()
