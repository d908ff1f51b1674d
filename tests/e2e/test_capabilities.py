"""The real bot process learns its speech server (issue 13 item 1): the voices it lists are what ``/speak``
offers and accepts, and the measuring after start finds the speeds it clamps, warns the operator once, tells a
member asking outside them, and shows it all to moderators in ``/settings show``."""

from __future__ import annotations

from pathlib import Path

from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import ServerQuirks, SpeechEndpoint
from tests.support.bot_process import running_bot

#: Kokoro-FastAPI's shape; the server clamps speed into 0.5-2 and has one voice under every name.
QUIRKS = ServerQuirks(voice_list={"voices": ["af_heart", "am_adam"]}, speeds=(0.5, 2.0))


async def test_the_bot_offers_the_server_s_voices_and_tells_what_it_will_not_honour(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    emu = discord_emulator
    async with SpeechEndpoint(api_key=SPEECH_TEST_KEY, quirks=QUIRKS) as endpoint, running_bot(
        emu, tmp_path, SPEECH_API_BASE_URL=endpoint.base_url, SPEECH_API_KEY=SPEECH_TEST_KEY, SPEECH_BACKEND="openai",
        SPEECH_TIMEOUT="10", SPEECH_FALLBACK="none", SPEECH_PROBE="auto", SPEECH_DEFAULT_VOICE="af_heart",
    ) as bot:
        assert endpoint.voice_list_requests[0].headers["Authorization"] == f"Bearer {SPEECH_TEST_KEY}"
        assert "voices: 2 offered, from the server's list" in bot.log

        async def speak(**options: object):  # noqa: ANN202 - the emulator's interaction type
            return await emu.invoke("speak", options, user=emu.user, guild=emu.guild, channel=emu.text_channel)

        spoken = await (await speak(text="Hello there.", voice="am_adam")).wait_message(timeout=30)
        assert spoken.attachments
        # the measuring runs meanwhile: its requests say another phrase
        assert [r.json["voice"] for r in endpoint.requests if r.json["input"] == "Hello there."] == ["am_adam"]

        refused = await (await speak(text="Hello there.", voice="alloy")).wait_response(timeout=5)
        assert refused.ephemeral
        assert refused.data["content"] == "Unknown voice 'alloy'. Available voices: af_heart, am_adam."

        await emu.wait_for(lambda: "every voice of the speech service" in bot.log, timeout=120,
                           what="the measuring after start")
        warnings = [line for line in bot.log.splitlines() if "WARNING" in line and "speech service at" in line]
        assert len(warnings) == 2, warnings
        assert "honours speeds from 0.5 to 2 only (measured)" in warnings[0]
        assert "SPEECH_SPEED_RANGE=0.5-2" in warnings[0]
        assert "(af_heart and another voice gave the same audio)" in warnings[1]

        fast = await speak(text="Quickly now.", speed=4.0)
        assert (await fast.wait_message(timeout=30)).attachments
        notice = await fast.wait_message(timeout=10, index=1)
        assert notice.ephemeral
        assert notice.content == "This bot's speech server speaks at speeds from 0.5 to 2 only, so 4× sounds like 2×."

        shown = await (await emu.invoke("settings show", {}, user=emu.owner, guild=emu.guild,
                                        channel=emu.text_channel)).wait_response(timeout=5)
        [embed] = shown.data["embeds"]
        speech = next(f["value"] for f in embed["fields"] if f["name"].startswith("Speech server"))
        assert "voices: 2 from the server's list" in speech
        assert "speed range: 0.5 to 2 (measured)" in speech
        assert "voice honoured: no: every voice sounds the same" in speech
        assert "instructions: not tried yet" in speech
    assert endpoint.failures == []
