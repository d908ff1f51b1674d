"""End to end: with ``/settings distinct-voices`` on, members who chose no voice are read aloud each in a voice
of their own, the same after a restart (observed in the requests the loopback speech server received)."""

from __future__ import annotations

from pathlib import Path

from bot.policy import distinct_voice
from bot.speech.catalog import CLASSIC_VOICES as DEFAULT_SPEECH_VOICES
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_state import User
from tests.loopback.speech_server import SpeechEndpoint
from tests.support.voice_helpers import current_session, join, segments, voice_bot


def someone_with_another_voice(emu: DiscordEmulator, than: User) -> User:
    """A new member of the server whose distinct voice differs from ``than``'s (ids are random-ish snowflakes)."""
    taken = distinct_voice(than.id, DEFAULT_SPEECH_VOICES)
    while True:
        user = emu.build.user("carol")
        if distinct_voice(user.id, DEFAULT_SPEECH_VOICES) != taken:
            emu.build.member(emu.guild, user)
            return user


async def read_two_messages(emu: DiscordEmulator, endpoint: SpeechEndpoint, first: User, second: User,
                            texts: tuple[str, str]) -> list[str]:
    """``first`` then ``second`` write ``texts`` in the voice channel's chat; the voices their messages were spoken
    with (each test phase says new texts: a repeated request would be answered from the bot's audio cache)."""
    session = await current_session(emu)
    already, requests = len(segments(session)), len(endpoint.requests)
    await emu.chat.send(first, emu.voice_channel, texts[0])
    await emu.wait_for(lambda: len(segments(session)) > already, timeout=40, what="the first message read")
    await emu.chat.send(second, emu.voice_channel, texts[1])
    await emu.wait_for(lambda: len(segments(session)) > already + 1, timeout=40, what="the second message read")
    await session.wait_idle(quiet=0.5, timeout=30)
    # one per text: a request the bot tried again (its first byte slower than the timeout on a busy machine)
    # asks for the same text in the same voice
    return list({request.json["input"]: request.json["voice"] for request in endpoint.requests[requests:]}.values())


async def test_members_without_a_voice_are_told_apart_and_keep_their_voice_across_a_restart(
    discord_emulator: DiscordEmulator, speech_endpoint: SpeechEndpoint, tmp_path: Path
) -> None:
    emu = discord_emulator
    alice = emu.user
    carol = someone_with_another_voice(emu, alice)
    expected = [distinct_voice(alice.id, DEFAULT_SPEECH_VOICES), distinct_voice(carol.id, DEFAULT_SPEECH_VOICES)]
    await emu.move_member(carol, emu.voice_channel)

    async with voice_bot(emu, speech_endpoint, tmp_path):
        await join(emu)
        off = await read_two_messages(emu, speech_endpoint, alice, carol, ("Hello world.", "Good morning everyone."))
        assert off == ["alloy", "alloy"]  # off: the default voice for both

        toggled = await emu.invoke("settings distinct-voices", {"enabled": True}, user=emu.owner)
        reply = (await toggled.wait_response()).data
        assert reply["flags"] & 64 and "Distinct voices" in reply["content"] and "→ on" in reply["content"]
        on = await read_two_messages(emu, speech_endpoint, alice, carol, ("Open the door.", "Thank you."))
        assert on == expected

    async with voice_bot(emu, speech_endpoint, tmp_path) as bot:  # the bot comes back to the channel by itself
        # the bot registers its session (and logs it) just after the voice connection is up
        await emu.wait_for(lambda: f"rejoined voice (guild={emu.guild.id} " in bot.log, timeout=30,
                           what="the bot back in voice after its restart")
        after_restart = await read_two_messages(emu, speech_endpoint, alice, carol, ("One two.", "Three four."))
        assert after_restart == expected
