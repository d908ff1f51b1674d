"""The shared voice sender keeps discord.py's AudioPlayer contract for every stream on one thread.

The voice client here is a recorder (what was sent, in what order, with which SPEAKING states); the real
path over UDP to the loopback voice server is covered by tests/e2e/test_voice.py.
"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import discord
import pytest

from bot.audio.opus import SILENCE_FRAME
from bot.voice.sender import E2EETimeoutError, PacketSender, SharedPlayback
from bot.voice.source import StreamedOpusSource


class RecordingVoiceClient:
    """What ``SharedPlayback`` uses of a ``discord.VoiceClient``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, guild_id: int, *, timeout: float = 1.0) -> None:
        self.guild = SimpleNamespace(id=guild_id)
        self.client = SimpleNamespace(loop=loop)
        self.ws = SimpleNamespace(speak=self._speak)
        # a transport mode RtpWriter does not shortcut: every packet comes to send_audio_packet below. While
        # ``e2ee_ready`` is False, the call's end-to-end encryption is not ready yet (DAVE on, version 1).
        self._connection = SimpleNamespace(mode="recorded", dave_protocol_version=0, e2ee_ready=True,
                                           e2ee_timed_out=self._e2ee_timed_out)
        self.e2ee_timeouts = 0
        self.not_ready_once: bytes | None = None  # davey's NotReady race: this packet fails once
        self.timeout = timeout
        self.connected = threading.Event()
        self.connected.set()
        self.sent: list[bytes] = []
        self.speaking: list[discord.SpeakingState] = []
        self.speaking_before_first_packet: bool | None = None
        self.fail_on: bytes | None = None

    async def _speak(self, state: discord.SpeakingState) -> None:
        self.speaking.append(state)

    def is_connected(self) -> bool:
        return self.connected.is_set()

    def _e2ee_timed_out(self) -> None:
        self.e2ee_timeouts += 1

    def send_audio_packet(self, data: bytes, *, encode: bool = True) -> None:
        assert encode is False, "Opus must go out as it is"
        if data == self.not_ready_once:
            self.not_ready_once = None
            raise RuntimeError("NotReady")  # what davey raises when re-initialised between check and use
        if data == self.fail_on:
            raise OSError("network is down")
        if self.speaking_before_first_packet is None:
            self.speaking_before_first_packet = discord.SpeakingState.voice in self.speaking
        self.sent.append(data)


def packets(tag: int, count: int) -> list[bytes]:
    return [bytes([0xFC, tag]) + n.to_bytes(2, "big") for n in range(count)]


def filled_source(items: list[bytes]) -> StreamedOpusSource:
    source = StreamedOpusSource(stall_timeout=5)
    source.push(items)
    source.end()
    return source


async def play(
    sender: PacketSender, client: RecordingVoiceClient, source: StreamedOpusSource
) -> tuple[SharedPlayback, asyncio.Future[Exception | None]]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Exception | None] = loop.create_future()
    playback = sender.play(client, source, lambda error: loop.call_soon_threadsafe(done.set_result, error))
    return playback, done


async def test_many_streams_share_one_thread_and_each_keeps_its_order() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    clients = [RecordingVoiceClient(loop, guild) for guild in range(20)]
    started = [await play(sender, client, filled_source(packets(i, 10))) for i, client in enumerate(clients)]
    while sum(len(c.sent) > 0 for c in clients) < 20:
        await asyncio.sleep(0.005)
    names = [t.name for t in threading.enumerate()]
    assert names.count("voice-sender") == 1 and not any(n.startswith("audio-player") for n in names)
    errors = await asyncio.wait_for(asyncio.gather(*(done for _, done in started)), 10)
    assert errors == [None] * 20
    for i, client in enumerate(clients):
        assert client.sent == packets(i, 10) + [SILENCE_FRAME] * 5
        await asyncio.sleep(0)  # let the SPEAKING coroutines run
    await asyncio.sleep(0.05)
    for client in clients:
        assert client.speaking_before_first_packet
        assert client.speaking[0] == discord.SpeakingState.voice
        assert client.speaking[-1] == discord.SpeakingState.none
    sender.close()
    assert not any(t.name == "voice-sender" for t in threading.enumerate())


async def test_a_slow_stream_gets_silence_and_does_not_hold_up_the_others() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    slow, fast = RecordingVoiceClient(loop, 1), RecordingVoiceClient(loop, 2)
    slow_source = StreamedOpusSource(stall_timeout=5)
    slow_source.push(packets(1, 2)[:1])
    _, slow_done = await play(sender, slow, slow_source)
    _, fast_done = await play(sender, fast, filled_source(packets(2, 12)))
    assert await asyncio.wait_for(fast_done, 5) is None
    assert fast.sent == packets(2, 12) + [SILENCE_FRAME] * 5
    assert slow.sent[0] == packets(1, 1)[0] and set(slow.sent[1:]) == {SILENCE_FRAME}  # starved: silence
    slow_source.push(packets(1, 2)[1:])
    slow_source.end()
    assert await asyncio.wait_for(slow_done, 5) is None
    assert [p for p in slow.sent if p != SILENCE_FRAME] == packets(1, 2)
    sender.close()


async def test_stop_ends_at_once_with_silence_frames_and_cleanup() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    client = RecordingVoiceClient(loop, 1)
    source = filled_source(packets(1, 500))  # 10 s
    playback, done = await play(sender, client, source)
    while len(client.sent) < 3:
        await asyncio.sleep(0.01)
    playback.stop()
    assert await asyncio.wait_for(done, 1) is None
    assert not playback.is_playing()
    audio = [p for p in client.sent if p != SILENCE_FRAME]
    assert 3 <= len(audio) < 500 and audio == packets(1, 500)[: len(audio)]
    assert client.sent[-5:] == [SILENCE_FRAME] * 5
    for _ in range(500):  # cleanup() runs on the sender thread just after ``after``, which resolved ``done``
        if source.cancelled:
            break
        await asyncio.sleep(0.01)
    assert source.cancelled  # cleanup() ran
    sender.close()


async def test_pause_sends_silence_once_and_resume_goes_on() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    client = RecordingVoiceClient(loop, 1)
    playback, done = await play(sender, client, filled_source(packets(1, 20)))
    while len(client.sent) < 3:
        await asyncio.sleep(0.01)
    playback.pause()
    await asyncio.sleep(0.1)
    paused_at = len(client.sent)
    await asyncio.sleep(0.2)
    assert len(client.sent) == paused_at and playback.is_paused()
    assert client.sent[-5:] == [SILENCE_FRAME] * 5
    playback.resume()
    assert await asyncio.wait_for(done, 5) is None
    assert [p for p in client.sent if p != SILENCE_FRAME] == packets(1, 20)
    sender.close()


async def test_waits_through_a_voice_reconnect_then_gives_up_after_the_timeout() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    back = RecordingVoiceClient(loop, 1, timeout=2.0)
    gone = RecordingVoiceClient(loop, 2, timeout=0.2)
    _, back_done = await play(sender, back, filled_source(packets(1, 10)))
    _, gone_done = await play(sender, gone, filled_source(packets(2, 500)))
    while len(back.sent) < 2 or len(gone.sent) < 2:
        await asyncio.sleep(0.01)
    back.connected.clear()
    gone.connected.clear()
    assert await asyncio.wait_for(gone_done, 2) is None  # gave up: no silence frames (not connected)
    assert gone.sent[-1] != SILENCE_FRAME and len(gone.sent) < 500
    back.connected.set()
    assert await asyncio.wait_for(back_done, 5) is None
    assert [p for p in back.sent if p != SILENCE_FRAME] == packets(1, 10)  # nothing lost across the reconnect
    sender.close()


async def test_a_send_error_ends_that_stream_only_and_reaches_after() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    broken, fine = RecordingVoiceClient(loop, 1), RecordingVoiceClient(loop, 2)
    broken.fail_on = packets(1, 10)[4]
    _, broken_done = await play(sender, broken, filled_source(packets(1, 10)))
    _, fine_done = await play(sender, fine, filled_source(packets(2, 10)))
    error = await asyncio.wait_for(broken_done, 5)
    assert isinstance(error, OSError)
    assert await asyncio.wait_for(fine_done, 5) is None
    assert fine.sent == packets(2, 10) + [SILENCE_FRAME] * 5
    sender.close()


async def test_a_stream_waits_for_end_to_end_encryption_and_loses_nothing() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    client = RecordingVoiceClient(loop, 1)
    client._connection.dave_protocol_version, client._connection.e2ee_ready = 1, False  # joined, group not ready
    playback, done = await play(sender, client, filled_source(packets(1, 10)))
    await asyncio.sleep(0.2)
    assert client.sent == [] and playback.is_playing()  # nothing in the clear while the keys are not ready
    client._connection.e2ee_ready = True
    assert await asyncio.wait_for(done, 5) is None
    assert client.sent == packets(1, 10) + [SILENCE_FRAME] * 5  # every packet, the first one included
    sender.close()


async def test_a_session_reinitialised_between_check_and_use_only_delays_the_packet() -> None:
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    client = RecordingVoiceClient(loop, 1)
    client._connection.dave_protocol_version = 1
    client.not_ready_once = packets(1, 10)[3]
    _, done = await play(sender, client, filled_source(packets(1, 10)))
    assert await asyncio.wait_for(done, 5) is None
    assert client.sent == packets(1, 10) + [SILENCE_FRAME] * 5
    sender.close()


async def test_an_item_that_waits_too_long_for_encryption_ends_with_a_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.voice.sender.E2EE_READY_TIMEOUT", 0.2)
    loop = asyncio.get_running_loop()
    sender = PacketSender()
    client = RecordingVoiceClient(loop, 1)
    client._connection.dave_protocol_version, client._connection.e2ee_ready = 1, False
    _, done = await play(sender, client, filled_source(packets(1, 20)))
    error = await asyncio.wait_for(done, 5)
    assert isinstance(error, E2EETimeoutError) and "end-to-end encryption" in error.message
    assert set(client.sent) <= {SILENCE_FRAME}  # silence may go out (DAVE passes it in the clear); audio never
    await asyncio.sleep(0.05)
    assert client.e2ee_timeouts == 1  # the connection is told, on the loop, so it can reconnect voice
    sender.close()
