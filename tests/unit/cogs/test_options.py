"""Every option of every command is checked in one place before anything runs (``bot.option_check``): random
valid and invalid interactions, built from the commands the bot registered, each get exactly one answer, the
invalid ones "That option isn't valid: <option>." with nothing sent to the speech engine, and the log stays
clean (the in-process fixture fails on any error logged)."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest

from tests.loopback.discord import DiscordEmulator
from tests.loopback.discord_interactions import build_interaction
from tests.loopback.discord_messages import EmulatedInteraction
from tests.unit.cogs.in_process import InProcessBot

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10
#: Valid runs of these would join a voice channel, out of scope here (the e2e voice tests do).
NO_VALID_RUN = {"join"}


def leaves(command: dict[str, Any]) -> list[tuple[list[str], list[dict[str, Any]]]]:
    """Every invocable path of a registered command ("settings", "budget") with its declared options."""
    options = command.get("options") or []
    subs = [o for o in options if o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)]
    if not subs:
        return [([command["name"]], options)]
    found = []
    for sub in subs:
        for path, declared in leaves(sub):
            found.append(([command["name"], *path], declared))
    return found


def valid_value(rng: random.Random, option: dict[str, Any]) -> Any:
    if option.get("choices"):
        return rng.choice(option["choices"])["value"]
    kind = option["type"]
    if kind == STRING:
        low, high = option.get("min_length", 0), min(option.get("max_length", 30), 30)
        return "".join(rng.choice(string.ascii_letters + " ") for _ in range(rng.randint(max(low, 1), high))).strip() \
            or "x"
    if kind == INTEGER:
        return rng.randint(int(option.get("min_value", 0)), int(option.get("max_value", 100)))
    if kind == NUMBER:
        return round(rng.uniform(option.get("min_value", 0.0), option.get("max_value", 10.0)), 2)
    if kind == BOOLEAN:
        return rng.random() < 0.5
    raise LookupError(kind)


def invalid_options(rng: random.Random, declared: list[dict[str, Any]],
                    options: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """``options`` with one thing Discord's client would never send; the option name the reply must name."""
    candidates: list[str] = ["unknown"]
    if any(o.get("required") for o in declared):
        candidates.append("missing")
    if declared:
        candidates += ["type", "range"]
    match rng.choice(candidates):
        case "unknown":
            return [*options, {"name": "bogus", "type": STRING, "value": "x"}], "bogus"
        case "missing":
            required = next(o for o in declared if o.get("required"))
            return [o for o in options if o["name"] != required["name"]], required["name"]
        case "type":
            target = rng.choice(declared)
            wrong = {STRING: 5, INTEGER: "five", NUMBER: "fast", BOOLEAN: "yes"}.get(target["type"], "not-an-id")
            return [o for o in options if o["name"] != target["name"]] + [
                {"name": target["name"], "type": target["type"], "value": wrong}], target["name"]
        case _:
            target = rng.choice(declared)
            if target.get("choices"):
                wrong: Any = "mp4" if target["type"] == STRING else 999_999
            elif target["type"] == STRING:
                wrong = "x" * (target.get("max_length", 6000) + 1)
            elif target["type"] in (INTEGER, NUMBER):
                wrong = target.get("max_value", 10**9) + 1
            else:
                wrong = 17  # a boolean or an object option carrying a number
            return [o for o in options if o["name"] != target["name"]] + [
                {"name": target["name"], "type": target["type"], "value": wrong}], target["name"]


async def dispatch(emu: DiscordEmulator, path: list[str], options: list[dict[str, Any]],
                   command: dict[str, Any]) -> EmulatedInteraction:
    """An INTERACTION_CREATE with exactly these options (a template from a harmless command, data replaced)."""
    interaction = build_interaction(emu, "voices", {}, user=emu.owner, guild=emu.guild, channel=emu.text_channel,
                                    attachment_size_limit=10 * 1024 * 1024, locale="en-US")
    nested = options
    for name, kind in zip(reversed(path[1:]), [SUB_COMMAND] + [SUB_COMMAND_GROUP] * 2, strict=False):
        nested = [{"name": name, "type": kind, "options": nested}]
    interaction.payload["data"] = {"id": command["id"], "name": path[0], "type": 1, "options": nested,
                                   "guild_id": command.get("guild_id", str(emu.guild.id))}
    interaction.name = " ".join(path)
    emu.interactions[interaction.id] = interaction
    interaction.dispatched_at = emu.loop_time()
    await emu.dispatch("INTERACTION_CREATE", interaction.payload)
    return interaction


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_interactions_each_get_one_answer_and_invalid_options_are_named(
    in_process_bot: InProcessBot, seed: int
) -> None:
    emu, speech = in_process_bot.emu, in_process_bot.speech
    rng = random.Random(seed)
    commands = emu.commands[emu.guild.id]
    paths = [(path, declared, command) for command in commands if command.get("type", 1) == 1
             for path, declared in leaves(command)]
    simple = {STRING, INTEGER, NUMBER, BOOLEAN}
    sent: list[tuple[EmulatedInteraction, str | None]] = []
    for _ in range(40):
        path, declared, command = rng.choice(paths)
        fillable = all(o["type"] in simple for o in declared if o.get("required"))
        options = [{"name": o["name"], "type": o["type"], "value": valid_value(rng, o)}
                   for o in declared if o["type"] in simple and (o.get("required") or rng.random() < 0.5)]
        if fillable and path[0] not in NO_VALID_RUN and "output" not in {o["name"] for o in options} \
                and rng.random() < 0.4:
            before = len(speech.requests)
            sent.append((await dispatch(emu, path, options, command), None))
        else:
            before = len(speech.requests)
            bad, named = invalid_options(rng, declared, options)
            sent.append((await dispatch(emu, path, bad, command), named))
        await sent[-1][0].wait_message(timeout=10)
        if sent[-1][1] is not None:
            assert len(speech.requests) == before, f"/{sent[-1][0].name}: the engine was asked"

    for interaction, named in sent:
        assert interaction.response is not None, f"/{interaction.name}: no answer"
        first = interaction.messages[0]
        if named is not None:
            assert interaction.response.type == 4 and first.ephemeral, f"/{interaction.name}"
            assert first.content == f"That option isn't valid: {named}.", (interaction.name, first.content)
            assert len(interaction.messages) == 1
        else:
            assert "isn't valid" not in first.content, (interaction.name, interaction.payload["data"])
    assert {named is None for _, named in sent} == {True, False}  # both kinds were tried


@pytest.mark.parametrize(
    ("option", "value"),
    [("format", "mp4"), ("output", "radio"), ("speed", "fast"), ("speed", 40.0), ("text", 12), ("voice", "x" * 6001)],
)
async def test_values_discord_would_not_send_are_refused_by_name(
    in_process_bot: InProcessBot, option: str, value: object
) -> None:
    emu = in_process_bot.emu
    [speak] = [c for c in emu.commands[emu.guild.id] if c["name"] == "speak"]
    kinds = {o["name"]: o["type"] for o in speak["options"]}
    options = [{"name": "text", "type": STRING, "value": "hello"}] if option != "text" else []
    interaction = await dispatch(emu, ["speak"], [*options, {"name": option, "type": kinds[option], "value": value}],
                                 speak)
    reply = await interaction.wait_message(timeout=10)
    assert reply.ephemeral and reply.content == f"That option isn't valid: {option}."
    assert in_process_bot.speech.requests == []


async def test_a_command_this_process_does_not_have_gets_one_line(in_process_bot: InProcessBot) -> None:
    """After a deploy Discord's clients can still offer a command for a while."""
    emu = in_process_bot.emu
    interaction = await dispatch(emu, ["retired"], [], {"id": str(emu.snowflake()), "name": "retired"})
    reply = await interaction.wait_message(timeout=10)
    assert reply.ephemeral and reply.content.startswith("I don't know that command")
