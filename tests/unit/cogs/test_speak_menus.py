"""Apps → "Speak this message" / "Speak with their voice", in-process: the message said as read-aloud says it,
in the invoker's (or its author's) voice, as a file or in voice, under the same policy as /speak."""

from __future__ import annotations

from tests.unit.cogs.in_process import InProcessBot


async def test_a_message_is_spoken_as_read_aloud_would_say_it_in_the_invokers_voice(
    in_process_bot: InProcessBot,
) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    target = await emu.chat.send(emu.user, emu.text_channel,
                                 f"Hello <@{emu.other_user.id}>, see **this** https://example.com/page",
                                 mentions=[emu.other_user])
    interaction = await emu.invoke_menu("Speak this message", target, user=emu.other_user)

    reply = await interaction.wait_message(timeout=10)
    [request] = speech.requests
    assert request.voice == "alloy"
    assert request.text == "Hello Bob, see this a link to example.com"  # read-aloud's cleaning, without "Alice said"
    assert "<@" not in request.text and "**" not in request.text
    assert "example.com" in request.text and "https://" not in request.text
    [attachment] = reply.attachments
    assert attachment.data == speech.served[0] and reply.allowed_mentions == {"parse": []}


async def test_with_their_voice_uses_the_authors_choices(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    chosen = await emu.invoke("voice set", {"voice": "shimmer", "speed": 1.25}, user=emu.user)
    await chosen.wait_message()
    target = await emu.chat.send(emu.user, emu.text_channel, "Good morning everyone")

    theirs = await emu.invoke_menu("Speak with their voice", target, user=emu.other_user)
    await theirs.wait_message(timeout=10)
    mine = await emu.invoke_menu("Speak this message", target, user=emu.other_user)
    await mine.wait_message(timeout=10)

    assert [(r.text, r.voice, r.speed) for r in speech.requests] == [
        ("Good morning everyone", "shimmer", 1.25), ("Good morning everyone", "alloy", 1.0)]


async def test_a_muted_invoker_is_refused_and_an_empty_message_is_explained(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    target = await emu.chat.send(emu.user, emu.text_channel, "Hello world")
    await in_process_bot.store.mute(emu.guild.id, emu.other_user.id)
    refused = await emu.invoke_menu("Speak this message", target, user=emu.other_user)
    reply = await refused.wait_message(timeout=10)
    assert reply.ephemeral and "muted" in reply.content

    blank = await emu.chat.send(emu.user, emu.text_channel, "\u200b")
    empty = await emu.invoke_menu("Speak this message", blank, user=emu.user)
    reply = await empty.wait_message(timeout=10)
    assert reply.ephemeral and reply.content == "That message has nothing I can read aloud."
    assert speech.requests == []


async def test_with_the_bot_in_the_invokers_voice_channel_it_is_said_there(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    joined = await emu.invoke("join", {})
    await joined.wait_message(timeout=20)
    target = await emu.chat.send(emu.other_user, emu.text_channel, "Thank you for listening")

    interaction = await emu.invoke_menu("Speak this message", target, user=emu.user)  # alice is in voice
    reply = await interaction.wait_message(timeout=10)
    assert not reply.attachments and f"<#{emu.voice_channel.id}>" in reply.content
    session = emu.voice_session()
    await emu.wait_for(lambda: len(session.audio_packets()) > 10, timeout=20, what="audio heard")
