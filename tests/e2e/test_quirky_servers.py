"""The issue 13 "done when", end to end with the real bot process and the loopback double's server quirks: a
wav-only server, a 22 kHz pcm server, a strict server that rejects unknown fields and a server that reports
unknown voices as 5xx: every path either works or says exactly why in one line."""

from __future__ import annotations

from pathlib import Path

from bot.audio.decode import duration_seconds
from bot.audio.formats import AudioFormat
from bot.storage import Store
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_voice_session import SAMPLE_RATE, decode_pcm
from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint, local_speech
from tests.support.bot_fixtures import speak
from tests.support.bot_process import running_bot
from tests.support.voice_helpers import PHRASE, current_session, heard_words, join, segments, speak_in_voice


def env(endpoint: SpeechEndpoint, **extra: str) -> dict[str, str]:
    return {"SPEECH_API_BASE_URL": endpoint.base_url, "SPEECH_BACKEND": "openai", "SPEECH_FALLBACK": "none",
            "SPEECH_TIMEOUT": "5", **extra}


async def test_voice_on_a_pcm_only_server_at_22khz_plays_at_the_right_speed(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    quirks = ServerQuirks(formats=frozenset({"pcm"}), pcm_rate=22_050)
    async with SpeechEndpoint(quirks=quirks) as endpoint, running_bot(emu, tmp_path, **env(endpoint)):
        await join(emu)
        session = await current_session(emu)
        await (await speak_in_voice(emu, PHRASE)).wait_message(timeout=30)
        await emu.wait_for(lambda: segments(session), timeout=30, what="the item played")
        await session.wait_idle(quiet=1.0, timeout=30)
        [played] = segments(session)
        assert heard_words(played) == PHRASE
        source, _ = await local_speech({"input": PHRASE, "voice": "alloy", "response_format": "wav",
                                        "model": "gpt-4o-mini-tts"})
        # 22,050 Hz taken for 24 kHz would be 8 % short (and high-pitched)
        assert abs(len(decode_pcm(played)) / SAMPLE_RATE - duration_seconds(source, AudioFormat.WAV)) <= 0.06
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus", "wav", "pcm"]


async def test_a_strict_server_with_a_server_style_still_speaks(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    store = await Store.open(f"sqlite:///{tmp_path / 'speechbot.db'}")
    await store.update_guild_settings(emu.guild.id, default_instructions="Speak calmly.")
    await store.close()
    async with SpeechEndpoint(quirks=ServerQuirks.strict()) as endpoint, \
            running_bot(emu, tmp_path, **env(endpoint, SPEECH_DEFAULT_FORMAT="wav")) as bot:
        for text in ("Hello world.", "Good morning everyone."):
            message = await (await speak(emu, text=text)).wait_message(timeout=30)
            assert message.attachments and not message.ephemeral, message.content
        assert ["instructions" in r.json for r in endpoint.requests] == [True, False, False]
        assert "does not accept instructions" in bot.log


async def test_a_voice_reported_unknown_as_503_is_named_once_and_others_still_work(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    quirks = ServerQuirks(voices=frozenset({"alloy"}))
    async with SpeechEndpoint(quirks=quirks) as endpoint, \
            running_bot(emu, tmp_path, **env(endpoint, SPEECH_BREAKER_FAILURES="2")) as bot:
        for _ in range(3):  # more than the breaker's threshold: it must not open
            message = await (await speak(emu, text="Hello world.", voice="nova")).wait_message(timeout=30)
            assert message.ephemeral
            assert message.content == "The speech service doesn't know the voice 'nova'. Try another voice."
        assert len(endpoint.requests) == 3  # no retries
        message = await (await speak(emu, text="Hello world.", voice="alloy")).wait_message(timeout=30)
        assert message.attachments, message.content
        assert "Voice 'nova' not found: it is not downloaded" in bot.log  # the server's reason, for the operator
        assert "failing fast" not in bot.log


async def test_read_aloud_on_a_wav_only_server_with_opus_files(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with SpeechEndpoint(quirks=ServerQuirks.wav_only()) as endpoint, \
            running_bot(emu, tmp_path, **env(endpoint, SPEECH_DEFAULT_FORMAT="opus")):
        await join(emu)
        session = await current_session(emu)
        await emu.chat.send(emu.user, emu.voice_channel, "Hello world!")
        await emu.wait_for(lambda: segments(session), timeout=30, what="the message read")
        await session.wait_idle(quiet=1.0, timeout=30)
        assert heard_words(segments(session)[0], ["alice said hello world", "hello world"]) == "alice said hello world"
        assert [r.json["response_format"] for r in endpoint.requests] == ["opus", "wav"]
