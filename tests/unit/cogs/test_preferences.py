"""``/voice`` in-process: a member's own choices, and the speech service honouring them."""

from __future__ import annotations

from tests.unit.cogs.in_process import InProcessBot


async def test_a_members_voice_choice_is_what_their_speak_uses(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    saved = await emu.invoke("voice set", {"voice": "shimmer", "speed": 0.75})
    assert (await saved.wait_message()).ephemeral

    mine = await emu.invoke("speak", {"text": "in my voice"})
    await mine.wait_message()
    theirs = await emu.invoke("speak", {"text": "in the default voice"}, user=emu.other_user)
    await theirs.wait_message()

    assert [(r.text, r.voice, r.speed) for r in speech.requests] == [
        ("in my voice", "shimmer", 0.75),
        ("in the default voice", "alloy", 1.0),
    ]
