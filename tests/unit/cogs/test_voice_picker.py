"""``/voice set`` without a voice, in-process: a select menu of the voices on offer (Discord's MESSAGE_COMPONENT
interactions from the loopback, the bot's UPDATE_MESSAGE answers checked against Discord's spec), the choice
saved and used, only for the member who asked, disabled once it times out, paged past Discord's 25 options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bot.voice_picker as voice_picker
from bot.owner_controls import BLOCKED_USER
from bot.voice_picker import NEXT_ID, NOT_YOURS, PREVIOUS_ID, SELECT_ID, TIMED_OUT
from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_messages import Message
from tests.unit.cogs.in_process import InProcessBot, running_in_process

STRING_SELECT, BUTTON = 3, 2


def components(message: Message) -> dict[str, dict[str, Any]]:
    """The message's components by custom_id (inside their action rows)."""
    return {c["custom_id"]: c for row in message.components for c in row.get("components", [])}


def offered(message: Message) -> list[str]:
    return [option["value"] for option in components(message)[SELECT_ID]["options"]]


async def test_the_menu_offers_the_voices_and_a_choice_is_saved_and_used(in_process_bot: InProcessBot) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    menu = await (await emu.invoke("voice set", {})).wait_message()
    assert menu.ephemeral and menu.content == "Choose your voice:" and menu.allowed_mentions == {"parse": []}
    select = components(menu)[SELECT_ID]
    assert select["type"] == STRING_SELECT and (select["min_values"], select["max_values"]) == (1, 1)
    assert offered(menu) == ["alloy", "echo", "fable", "onyx", "nova", "shimmer"]
    assert [o["value"] for o in select["options"] if o.get("default")] == ["alloy"]  # what they have now

    for values in (["zeus"], ["nova", "echo"]):  # not offered; more than one: Discord's client cannot send them
        with pytest.raises(ValueError):
            await emu.select(menu, SELECT_ID, values)
    chosen = await emu.select(menu, SELECT_ID, ["nova"])
    confirmed = await chosen.wait_message()
    assert chosen.response is not None and chosen.response.type == 7  # UPDATE_MESSAGE: the menu's own message
    assert confirmed is menu and menu.content == "Saved in this server: your voice is now **nova**."
    assert menu.components == []

    await (await emu.invoke("speak", {"text": "in my new voice"})).wait_message()
    assert [(r.text, r.voice) for r in speech.requests] == [("in my new voice", "nova")]
    assert (await in_process_bot.store.get_user_prefs(emu.user.id, emu.guild.id)).voice == "nova"


async def test_other_options_are_saved_and_the_menu_still_offered(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    menu = await (await emu.invoke("voice set", {"speed": 1.25, "scope": "everywhere"})).wait_message()
    assert menu.content.startswith("Saved everywhere:\n• Speed: 1.25×") and menu.content.endswith("Choose your voice:")
    await (await emu.select(menu, SELECT_ID, ["echo"])).wait_message()
    assert menu.content == "Saved everywhere: your voice is now **echo**."
    prefs = await in_process_bot.store.get_user_prefs(emu.user.id, None)
    assert (prefs.voice, prefs.speed) == ("echo", 1.25)


async def test_nobody_else_can_use_a_members_menu(in_process_bot: InProcessBot) -> None:
    emu, store = in_process_bot.emu, in_process_bot.store
    menu = await (await emu.invoke("voice set", {}, user=emu.user)).wait_message()
    with pytest.raises(PermissionError):  # Discord shows an ephemeral message to its invoker alone
        await emu.select(menu, SELECT_ID, ["onyx"], user=emu.other_user)

    tampered = await emu.select(menu, SELECT_ID, ["onyx"], user=emu.other_user, tampered=True)
    refusal = await tampered.wait_message()
    assert refusal.ephemeral and refusal.content == NOT_YOURS and refusal is not menu
    assert offered(menu)  # the menu is untouched
    assert (await store.get_user_prefs(emu.other_user.id, emu.guild.id)).voice is None
    assert (await store.get_user_prefs(emu.user.id, emu.guild.id)).voice is None

    await (await emu.select(menu, SELECT_ID, ["onyx"], user=emu.user)).wait_message()
    assert (await store.get_user_prefs(emu.user.id, emu.guild.id)).voice == "onyx"


async def test_an_unused_menu_is_disabled_when_it_times_out(
    in_process_bot: InProcessBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = in_process_bot.emu
    monkeypatch.setattr(voice_picker, "PICKER_TIMEOUT", 0.5)
    menu = await (await emu.invoke("voice set", {})).wait_message()
    await emu.wait_for(lambda: menu.content == TIMED_OUT, timeout=10, what="the menu timed out")
    assert components(menu)[SELECT_ID]["disabled"] is True
    with pytest.raises(PermissionError):  # a disabled menu cannot be used in Discord's client
        await emu.select(menu, SELECT_ID, ["echo"])
    assert (await in_process_bot.store.get_user_prefs(emu.user.id, emu.guild.id)).voice is None


async def test_more_than_25_voices_are_offered_a_page_at_a_time(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    voices = ["alloy", *(f"voice{n:02d}" for n in range(1, 30))]
    async with running_in_process(discord_emulator, tmp_path, SPEECH_VOICES=",".join(voices)) as running:
        emu = running.emu
        menu = await (await emu.invoke("voice set", {})).wait_message()
        assert menu.content == "Choose your voice: (page 1 of 2)" and offered(menu) == voices[:25]
        buttons = components(menu)
        assert buttons[PREVIOUS_ID]["type"] == BUTTON and buttons[PREVIOUS_ID]["disabled"] is True
        assert not buttons[NEXT_ID].get("disabled")

        await (await emu.click(menu, NEXT_ID)).wait_message()
        assert menu.content == "Choose your voice: (page 2 of 2)" and offered(menu) == voices[25:]
        assert components(menu)[NEXT_ID]["disabled"] is True

        await (await emu.select(menu, SELECT_ID, ["voice29"])).wait_message()
        assert menu.content == "Saved in this server: your voice is now **voice29**."
        assert (await running.store.get_user_prefs(emu.user.id, emu.guild.id)).voice == "voice29"


async def test_a_member_blocked_while_their_menu_is_open_cannot_use_it(in_process_bot: InProcessBot) -> None:
    emu = in_process_bot.emu
    menu = await (await emu.invoke("voice set", {})).wait_message()
    await (await emu.invoke("owner block user", {"user": emu.user}, user=emu.owner)).wait_message()
    refusal = await (await emu.select(menu, SELECT_ID, ["echo"])).wait_message()
    assert refusal.ephemeral and refusal.content == BLOCKED_USER
    assert (await in_process_bot.store.get_user_prefs(emu.user.id, emu.guild.id)).voice is None
