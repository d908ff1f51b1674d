"""``/mute``, ``/unmute`` and ``/dictionary`` in-process: moderators' decisions reach what is spoken."""

from __future__ import annotations

from tests.unit.cogs.in_process import InProcessBot


async def test_a_muted_member_cannot_speak_until_unmuted(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    muted = await emu.invoke("mute", {"member": emu.user}, user=emu.owner)
    reply = await muted.wait_message()
    assert reply.ephemeral and reply.allowed_mentions == {"parse": []}

    refused = await emu.invoke("speak", {"text": "am I muted"})
    assert (await refused.wait_message()).ephemeral

    unmuted = await emu.invoke("unmute", {"member": emu.user}, user=emu.owner)
    await unmuted.wait_message()
    spoken = await emu.invoke("speak", {"text": "not any more"})
    assert not (await spoken.wait_message()).ephemeral
    assert [r.text for r in speech.requests] == ["not any more"]


async def test_a_dictionary_entry_is_listed_and_a_regex_that_could_block_is_refused(
    in_process_bot: InProcessBot,
) -> None:
    emu = in_process_bot.emu
    added = await emu.invoke("dictionary add", {"pattern": "gg", "replacement": "good game"}, user=emu.owner)
    assert (await added.wait_message()).ephemeral
    slow = await emu.invoke("dictionary add", {"pattern": "(a+)+$", "replacement": "x", "regex": True},
                            user=emu.owner)
    refusal = await slow.wait_message()
    assert refusal.ephemeral

    listed = await emu.invoke("dictionary list", {}, user=emu.owner)
    listing = await listed.wait_message()
    assert "gg" in listing.content and "good game" in listing.content and "(a+)+" not in listing.content
    assert [e.pattern for e in await in_process_bot.store.list_entries(emu.guild.id)] == ["gg"]
