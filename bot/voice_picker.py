"""The voice picker: ``/voice set`` without a voice answers (ephemerally) with a select menu of the voices on offer.

Discord allows 25 options per select, so more voices are shown 25 at a time with ◀ / ▶ buttons. Choosing one saves
it (through the ``save`` callback the cog gives) and turns the message into a confirmation without the menu.
Only the member who ran the command can use it (Discord shows an ephemeral message to them alone; the view checks
again, for a tampered client). After ``PICKER_TIMEOUT`` seconds unused, the menu is shown disabled.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import discord

from bot.errors import UserFacingError
from bot.i18n import ENGLISH, N_, translate
from bot.interactions import NO_MENTIONS, language_for, send_ephemeral, tr

log = logging.getLogger(__name__)

#: Discord's most options in one select menu.
PAGE_SIZE = 25
#: Seconds the menu can be used (well within an interaction token's 15 minutes, so the timeout edit can land).
PICKER_TIMEOUT = 180.0

SELECT_ID = "voice-picker:select"
PREVIOUS_ID = "voice-picker:previous"
NEXT_ID = "voice-picker:next"
NOT_YOURS = N_("This menu belongs to someone else: run /voice set yourself.")
TIMED_OUT = N_("This menu timed out. Run /voice set again to choose a voice.")


class VoicePicker(discord.ui.View):
    """One member's voice menu (module docstring)."""

    def __init__(
        self,
        *,
        owner_id: int,
        voices: Sequence[str],
        current: str | None,
        save: Callable[[str], Awaitable[str]],
        timeout: float | None = None,
        language: str = ENGLISH,
    ) -> None:
        """``language`` is the owner's (the menu's words); ``save`` returns the confirmation, already worded."""
        super().__init__(timeout=PICKER_TIMEOUT if timeout is None else timeout)
        if not voices:
            raise ValueError("a picker needs at least one voice")
        self.owner_id = owner_id
        self.voices = tuple(voices)
        self.current = current
        self.save = save
        self.language = language
        self.origin: discord.Interaction | None = None  # the /voice set that showed it (edited on timeout)
        self.page = self.voices.index(current) // PAGE_SIZE if current in self.voices else 0
        self.select: discord.ui.Select[VoicePicker] = discord.ui.Select(
            custom_id=SELECT_ID, placeholder=translate(self.language, "Choose your voice"), min_values=1,
            max_values=1)
        self.select.callback = self._chosen  # type: ignore[method-assign]
        self.add_item(self.select)
        self.previous: discord.ui.Button[VoicePicker] | None = None
        self.next: discord.ui.Button[VoicePicker] | None = None
        if len(self.voices) > PAGE_SIZE:
            self.previous = discord.ui.Button(custom_id=PREVIOUS_ID, label=translate(self.language, "◀ Previous"),
                                              style=discord.ButtonStyle.secondary)
            self.next = discord.ui.Button(custom_id=NEXT_ID, label=translate(self.language, "Next ▶"),
                                          style=discord.ButtonStyle.secondary)
            self.previous.callback = self._previous  # type: ignore[method-assign]
            self.next.callback = self._next  # type: ignore[method-assign]
            self.add_item(self.previous)
            self.add_item(self.next)
        self._fill()

    @property
    def pages(self) -> int:
        return -(-len(self.voices) // PAGE_SIZE)

    def prompt(self) -> str:
        """The message text above the menu."""
        if self.pages > 1:
            return translate(self.language, "Choose your voice: (page {page} of {pages})", page=self.page + 1,
                             pages=self.pages)
        return translate(self.language, "Choose your voice:")

    def _fill(self) -> None:
        shown = self.voices[self.page * PAGE_SIZE:(self.page + 1) * PAGE_SIZE]
        mine = translate(self.language, "what you have now")
        self.select.options = [
            discord.SelectOption(label=voice, value=voice, default=voice == self.current,
                                 description=mine if voice == self.current else None)
            for voice in shown
        ]
        if self.previous is not None and self.next is not None:
            self.previous.disabled = self.page == 0
            self.next.disabled = self.page >= self.pages - 1

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        if interaction.user.id != self.owner_id:
            await interaction.response.send_message(tr(interaction, NOT_YOURS), ephemeral=True,
                                                    allowed_mentions=NO_MENTIONS)
            return False
        return True

    async def _chosen(self, interaction: discord.Interaction) -> None:
        confirmation = await self.save(self.select.values[0])
        self.stop()
        await interaction.response.edit_message(content=confirmation, view=None, allowed_mentions=NO_MENTIONS)

    async def _previous(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, -1)

    async def _next(self, interaction: discord.Interaction) -> None:
        await self._turn(interaction, 1)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self.page = max(0, min(self.pages - 1, self.page + step))
        self._fill()
        await interaction.response.edit_message(content=self.prompt(), view=self, allowed_mentions=NO_MENTIONS)

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Select | discord.ui.Button):
                item.disabled = True
        if self.origin is None:
            return
        try:
            await self.origin.edit_original_response(content=translate(self.language, TIMED_OUT), view=self,
                                                     allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:  # dismissed by the member, or the token expired: nothing to show
            log.info("could not disable a timed-out voice picker (interaction=%s): %s", self.origin.id, exc.status)

    async def on_error(self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[VoicePicker],
                       /) -> None:
        if isinstance(error, UserFacingError):
            message = error.localized(language_for(interaction))
        else:
            log.error("voice picker failed (user=%s)", interaction.user.id, exc_info=error)
            message = tr(interaction, "Something went wrong on my side. Please try again.")
        try:
            await send_ephemeral(interaction, message)
        except discord.HTTPException as exc:
            log.warning("could not send a voice picker error (interaction=%s): %s", interaction.id, exc.status)
