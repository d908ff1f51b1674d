"""End to end: the real bot process, over real sockets, against the loopback Discord and speech endpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bot.audio.decode import duration_seconds
from bot.audio.encode import encode_pcm
from bot.audio.formats import AudioFormat, sniff
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, SpeechEndpoint
from tests.support.audio_check import recognize_audio
from tests.support.bot_fixtures import speak
from tests.support.bot_process import BotProcess, running_bot

API_KEY = SPEECH_TEST_KEY  # what the speech_endpoint fixture expects


async def test_speak_is_registered_with_the_declared_option_schema(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    commands = await discord_emulator.wait_commands(timeout=5, guild_id=discord_emulator.guild.id)
    speak_command = next(c for c in commands if c["name"] == "speak")
    assert speak_command["description"]
    options = {o["name"]: o for o in speak_command["options"]}
    assert list(options) == ["text", "voice", "format", "speed", "instructions", "output"]
    assert all(o["description"] for o in options.values())
    assert options["text"]["type"] == 3 and options["text"]["required"] and options["text"]["max_length"] == 4096
    assert options["voice"]["autocomplete"] is True
    assert [c["value"] for c in options["format"]["choices"]] == ["opus", "wav", "flac", "aac", "pcm"]
    assert options["speed"]["type"] == 10
    assert (options["speed"]["min_value"], options["speed"]["max_value"]) == (0.25, 4.0)
    assert options["instructions"]["type"] == 3 and not options["instructions"].get("required", False)


@pytest.mark.parametrize("fmt", ["opus", "wav", "flac", "aac", "pcm"])
async def test_speak_uploads_exactly_the_audio_the_endpoint_served(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, fmt: str
) -> None:
    text = "Hello world, this is a test of the speech system."
    interaction = await speak(discord_emulator, text=text, voice="nova", format=fmt, speed=1.25)

    response = await interaction.wait_response(timeout=5)
    assert response.type == 5  # deferred within the deadline
    message = await interaction.wait_message(timeout=30)
    assert not message.ephemeral
    assert message.allowed_mentions == {"parse": []}
    assert f"<@{discord_emulator.user.id}>" in message.content and "Hello world" in message.content
    [attachment] = message.attachments
    assert attachment.filename == f"speech.{fmt}"
    assert attachment.data == speech_endpoint.served[-1]

    [request] = speech_endpoint.requests
    assert request.json == {
        "model": "gpt-4o-mini-tts",
        "input": text,
        "voice": "nova",
        "response_format": fmt,
        "speed": 1.25,
    }
    if fmt != "pcm":
        assert sniff(attachment.data[:12]) is AudioFormat(fmt)
    seconds = duration_seconds(attachment.data, AudioFormat(fmt))
    assert 1.5 < seconds < 6.0


async def test_defaults_send_opus_alloy_and_no_speed(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    interaction = await speak(discord_emulator, text="  good morning everyone  ")
    message = await interaction.wait_message(timeout=30)
    assert message.attachments[0].filename == "speech.opus"
    assert speech_endpoint.requests[0].json == {
        "model": "gpt-4o-mini-tts",
        "input": "good morning everyone",
        "voice": "alloy",
        "response_format": "opus",
    }


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"text": "hi", "voice": "zeus"}, "Unknown voice"),
        ({"text": "   "}, "nothing to say"),
    ],
)
async def test_invalid_input_is_refused_ephemerally_and_nothing_is_sent(
    bot: BotProcess,
    discord_emulator: DiscordEmulator,
    speech_endpoint: SpeechEndpoint,
    options: dict[str, object],
    expected: str,
) -> None:
    interaction = await speak(discord_emulator, **options)
    response = await interaction.wait_response(timeout=5)
    assert response.type == 4 and response.ephemeral
    assert expected in response.data["content"]
    assert speech_endpoint.requests == []


async def test_audio_over_the_upload_limit_is_a_clear_error(
    bot: BotProcess, discord_emulator: DiscordEmulator
) -> None:
    interaction = await discord_emulator.invoke(
        "speak",
        {"text": "This sentence is long enough to be larger than a tiny limit.", "format": "wav"},
        user=discord_emulator.user,
        guild=discord_emulator.guild,
        channel=discord_emulator.text_channel,
        attachment_size_limit=20_000,
    )
    message = await interaction.wait_message(timeout=30)
    assert message.ephemeral and not message.attachments
    assert "upload limit" in message.content


def openai_error(message: str, kind: str, code: str) -> dict[str, object]:
    """An error body as OpenAI sends it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


FAULTS = [
    (
        Fault(status=401, body=openai_error(
            "Incorrect API key provided: sk-test-SECRETKEY-0123456789", "invalid_request_error", "invalid_api_key"
        )),
        "API key",
    ),
    (
        Fault(status=429, body=openai_error(
            "You exceeded your current quota", "insufficient_quota", "insufficient_quota"
        )),
        "out of credit",
    ),
    (
        Fault(status=429, body=openai_error("Rate limit reached", "requests", "rate_limit_exceeded"), times=5),
        "busy",
    ),
    (Fault(status=500, body="Internal Server Error", times=5), "having problems"),
    (Fault(status=400, body={"detail": "Missing input text"}), "rejected the request"),
    (Fault(cut_after=2000, times=5), "stopped sending"),
    (Fault(first_byte_delay=10, times=5), "took too long"),
    (Fault(not_audio=True), "not audio"),
]


async def test_every_fault_gets_a_clear_ephemeral_error_and_the_next_speak_works(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    for fault, expected in FAULTS:
        speech_endpoint.inject(fault)
        interaction = await speak(discord_emulator, text="Good morning everyone.")
        assert (await interaction.wait_response(timeout=5)).type == 5
        message = await interaction.wait_message(timeout=40)
        assert message.ephemeral, (fault, message.content)
        assert expected in message.content, (fault, message.content)
        assert API_KEY not in message.content and "Traceback" not in message.content
        assert not message.attachments
        assert interaction.original_deleted, "the public 'thinking…' message must not stay behind"
        speech_endpoint.clear_faults()

        healthy = await speak(discord_emulator, text="Thank you for listening.")
        reply = await healthy.wait_message(timeout=30)
        assert not reply.ephemeral and reply.attachments, fault
        bot.assert_alive()


async def test_with_no_api_key_speak_uses_the_offline_engine(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    async with running_bot(discord_emulator, tmp_path, console_script=True):  # the `speechbot run` entry point
        interaction = await speak(discord_emulator, text="Please join the voice channel.")
        assert (await interaction.wait_response(timeout=5)).type == 5
        message = await interaction.wait_message(timeout=60)
        [attachment] = message.attachments
        assert attachment.filename == "speech.opus" and sniff(attachment.data[:12]) is AudioFormat.OPUS
        phrases = ["hello world", "please join the voice channel", "good morning everyone"]
        assert recognize_audio(attachment.data, AudioFormat.OPUS, phrases) == "please join the voice channel"


async def test_commands_are_synced_once_and_not_again_when_unchanged(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": API_KEY}
    path = f"/applications/{discord_emulator.application_id}/guilds/{discord_emulator.guild.id}/commands"

    def syncs() -> int:
        return sum(1 for method, p in discord_emulator.requests if method == "PUT" and p == path)

    async with running_bot(discord_emulator, tmp_path, **env):
        assert syncs() == 1
    async with running_bot(discord_emulator, tmp_path, **env) as second:
        await discord_emulator.wait_for(lambda: "not syncing" in second.log, timeout=10)
        assert syncs() == 1
        interaction = await speak(discord_emulator, text="hello world")
        assert (await interaction.wait_message(timeout=30)).attachments


async def test_a_token_for_another_application_gets_its_commands_from_the_same_data_directory(
    speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    """The sync fingerprint is kept per application: a new application's commands are never "unchanged"."""
    env = {"SPEECH_API_BASE_URL": speech_endpoint.base_url, "SPEECH_API_KEY": API_KEY, "DEV_GUILD_ID": ""}
    for token in ("first-application-token", "second-application-token"):
        async with DiscordEmulator(token=token) as emu:
            async with running_bot(emu, tmp_path, **env):  # waits until the global commands are registered
                names = {command["name"] for command in emu.commands[None]}
            assert "speak" in names
            assert not emu.failures


def _damaged_bodies() -> dict[str, bytes]:
    tone = b"".join(int(8000 * math.sin(n / 10)).to_bytes(2, "little", signed=True) for n in range(48_000))
    good = encode_pcm(tone, 24_000, AudioFormat.OPUS)
    middle = len(good) // 2
    return {
        "OggS then garbage": b"OggS" + bytes(range(256)) * 40,
        "a flipped middle": good[:middle] + bytes(b ^ 0xFF for b in good[middle : middle + 64]) + good[middle + 64 :],
        "cut short": good[: len(good) * 2 // 3],
    }


@pytest.mark.parametrize("damage", list(_damaged_bodies()))
async def test_damaged_audio_is_never_posted(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, damage: str
) -> None:
    speech_endpoint.inject(Fault(body=_damaged_bodies()[damage], content_type="audio/ogg"))
    interaction = await speak(discord_emulator, text="Hello world.")
    message = await interaction.wait_message(timeout=30)
    assert message.ephemeral and message.content == "The speech service sent damaged audio. Try again."
    assert not [m for m in discord_emulator.all_messages() if m.attachments]
    await discord_emulator.wait_for(lambda: "sent damaged opus audio" in bot.log, timeout=5)  # the reason, logged

    retry = await speak(discord_emulator, text="Hello world.")  # nothing was cached: asked again, and posted
    assert (await retry.wait_message(timeout=30)).attachments
    assert len(speech_endpoint.requests) == 2


async def test_mislabelled_audio_is_sniffed_and_named_by_its_bytes(
    bot: BotProcess, discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint
) -> None:
    speech_endpoint.inject(Fault(content_type="text/html; charset=utf-8"))
    interaction = await speak(discord_emulator, text="Hello world.", format="flac")
    message = await interaction.wait_message(timeout=30)
    [attachment] = message.attachments
    assert attachment.filename == "speech.flac" and attachment.data == speech_endpoint.served[-1]
