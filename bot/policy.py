"""What a member may have spoken, and how: server and user settings applied to every synthesis.

Used by ``/speak`` and by read-aloud alike, so both refuse the same people with the same words and count
against the same budgets. Everything that refuses raises :class:`~bot.errors.UserFacingError`.

Callers go through :class:`bot.speech_service.SpeechService`, which applies it in this order: the member's
standing (:meth:`Policy.check_member`: mutes, required and denied roles), the options (:meth:`Policy.options_for`:
voice, speed, format, ... to use), then the per-member rate (:class:`RateLimiter`) and the server's budgets
(``bot.usage``) for what will really be sent to the speech service.

The per-user rate is an in-memory sliding window per server and user: a second process has its own window and a
restart forgets it, which is fine for its purpose (stopping one member from draining the credit in a burst) and
keeps a database write off every message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.audio.formats import AudioFormat
from bot.config import Settings
from bot.errors import UserFacingError
from bot.i18n import N_, Text
from bot.setting_choices import SpeakOutput
from bot.speech.capabilities import EndpointCapabilities
from bot.speech.catalog import voices_text
from bot.storage import GuildSettings, Store, UserPrefs, UserPrefsChanges

RATE_WINDOW_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SpeakOptions:
    """How to speak for one user in one server. ``notices``: something to tell the user (once), worded in their
    language when told; ``notice`` is the English of it (logs, tests)."""

    voice: str
    speed: float
    format: AudioFormat
    instructions: str | None
    output: SpeakOutput
    notices: tuple[Text, ...] = ()

    @property
    def notice(self) -> str | None:
        return " ".join(str(text) for text in self.notices) or None


def distinct_voice(member_id: int, voices: Iterable[str]) -> str:
    """The voice ``member_id`` gets where the server turned distinct voices on and they chose none.

    Derived from the id alone (SHA-256, not Python's per-process salted ``hash``) over the voices sorted, so it
    is the same after a restart, in every process and whatever order the voices are configured in; different
    members mostly get different voices (with few voices some must share one).
    """
    offered = sorted(set(voices))
    if not offered:
        raise ValueError("no voices to choose from")
    digest = hashlib.sha256(str(member_id).encode()).digest()
    return offered[int.from_bytes(digest[:8], "big") % len(offered)]


def resolve_options(
    settings: Settings,
    guild: GuildSettings,
    prefs: UserPrefs,
    *,
    member_id: int | None = None,
    voice: str | None = None,
    speed: float | None = None,
    format: AudioFormat | None = None,
    instructions: str | None = None,
    output: SpeakOutput | None = None,
) -> SpeakOptions:
    """What was asked for, else the user's preference, else the server's default, else the bot's.

    Where the server turned distinct voices on, a member (``member_id``) who chose no voice gets their own
    (:func:`distinct_voice` among the voices on offer) instead of the server's default voice.

    A saved voice that is no longer offered (``SPEECH_VOICES`` changed, or a new engine brought its own list)
    or a saved speed the engine cannot do (the Realtime API stops at 1.5) is skipped with a notice, for the
    server's default; a server default the engine cannot do gives the bot's. What was explicitly asked for is
    left for request validation to refuse.
    """
    offered, speeds = settings.speech_voices, settings.speed_range
    server_voice = guild.default_voice if guild.default_voice in offered else settings.default_voice
    server_speed = guild.default_speed if guild.default_speed in speeds else 1.0
    # Distinct voices: a member who chose no voice gets their own in place of the server's default voice.
    own_voice = distinct_voice(member_id, offered) if guild.distinct_voices and member_id is not None and offered \
        else None
    notices = []
    if prefs.voice is not None and prefs.voice not in offered:
        if own_voice:
            notices.append(Text(N_("Your voice {voice} is no longer offered, so you now get your own voice on this "
                                   "server ({fallback}). Pick another with /voice set."),
                                {"voice": repr(prefs.voice), "fallback": own_voice}))
        else:
            notices.append(Text(N_("Your voice {voice} is no longer offered, so you now get this server's default "
                                   "({fallback}). Pick another with /voice set."),
                                {"voice": repr(prefs.voice), "fallback": server_voice}))
        prefs = UserPrefs(speed=prefs.speed, instructions=prefs.instructions, spoken_name=prefs.spoken_name)
    if prefs.speed is not None and prefs.speed not in speeds:
        notices.append(Text(
            N_("Your speed {speed}× is more than this bot's voice engine can do ({speeds}), so you now get this "
               "server's default ({default}×). Pick another with /voice set."),
            {"speed": prefs.speed, "speeds": str(speeds), "default": server_speed},
        ))
        prefs = UserPrefs(voice=prefs.voice, instructions=prefs.instructions, spoken_name=prefs.spoken_name)
    if own_voice is not None:
        server_voice = own_voice
        guild = dataclasses.replace(guild, default_voice=own_voice)
    effective = prefs.effective(guild)
    return SpeakOptions(
        voice=voice or (effective.voice if effective.voice in offered else server_voice),
        speed=(effective.speed if effective.speed in speeds else server_speed) if speed is None else speed,
        format=format or guild.default_format or settings.default_format,
        instructions=instructions or effective.instructions,
        output=output or guild.speak_output,
        notices=tuple(notices),
    )


def check_voice(settings: Settings, voice: str) -> None:
    """Refuse a voice the bot does not offer (``SPEECH_VOICES``), listing those it does."""
    if voice not in settings.speech_voices:
        raise UserFacingError(
            "Unknown voice {voice}. Available voices: {voices}.", voice=repr(voice[:40]),
            voices=voices_text(settings.speech_voices),
        )


def check_speed(settings: Settings, speed: float) -> None:
    """Refuse a speed the bot's voice engine cannot do (never clamped: the user says what they want)."""
    if speed not in settings.speed_range:
        raise UserFacingError(
            "This bot's voice engine speaks at speeds from {low} to {high}, not {speed}.",
            low=settings.speed_range.low, high=settings.speed_range.high, speed=speed,
        )


def check_roles(guild: GuildSettings, role_ids: Iterable[int]) -> None:
    """Refuse a member holding the denied role or lacking the required one."""
    roles = set(role_ids)
    if guild.deny_role_id is not None and guild.deny_role_id in roles:
        denied = f"<@&{guild.deny_role_id}>"
        raise UserFacingError("Members with the {role} role cannot use text-to-speech here.", role=denied)
    if guild.required_role_id is not None and guild.required_role_id not in roles:
        required = f"<@&{guild.required_role_id}>"
        raise UserFacingError("You need the {role} role to use text-to-speech here.", role=required)


class RateLimiter:
    """Characters per member per server in a sliding window, in memory (see the module docstring)."""

    def __init__(self, window: float = RATE_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._spent: defaultdict[tuple[int, int], deque[tuple[float, int]]] = defaultdict(deque)

    def admit(self, guild_id: int, user_id: int, characters: int, limit: int) -> None:
        """Count ``characters`` now, or refuse (counting nothing) if that would pass ``limit`` in the window."""
        if characters > limit:
            raise UserFacingError(
                "That is {characters} characters; this server allows each member {limit} per minute.",
                characters=characters, limit=limit,
            )
        now = self._clock()
        spent = self._spent[(guild_id, user_id)]
        while spent and spent[0][0] <= now - self._window:
            spent.popleft()
        total = sum(chars for _, chars in spent)
        if total + characters > limit:
            # the oldest entries expire first; wait until enough of them have
            freed, wait = total + characters - limit, 0.0
            for at, chars in spent:
                freed -= chars
                wait = at + self._window - now
                if freed <= 0:
                    break
            raise UserFacingError(
                "Slow down: this server allows each member {limit} characters per minute. Try again in {seconds} s.",
                limit=limit, seconds=math.ceil(wait),
            )
        spent.append((now, characters))

    def forget_user(self, user_id: int) -> None:
        for key in [key for key in self._spent if key[1] == user_id]:
            del self._spent[key]


class Policy:
    """The settings and limits of every server, applied; one per bot (``bot.policy``)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        rate_limiter: RateLimiter | None = None,
        capabilities: EndpointCapabilities | None = None,
    ) -> None:
        self._settings = settings
        self.store = store
        self.rate_limiter = rate_limiter or RateLimiter()
        #: Holds the voices offered now (refreshed while the bot runs: ``bot.speech.voices.VoiceRefresher``).
        self.capabilities = capabilities or EndpointCapabilities(voices=settings.speech_voices)

    @property
    def settings(self) -> Settings:
        """The bot's settings with the voices offered now: a voice the server stopped listing is "no longer
        offered" from the next request on, and distinct voices are chosen among the new list."""
        return self.capabilities.offered(self._settings)

    async def check_member(self, guild_id: int, user_id: int, role_ids: Iterable[int]) -> GuildSettings:
        """The server's settings, or a refusal for a muted member, a denied role or a missing required role."""
        if await self.store.is_muted(guild_id, user_id):
            raise UserFacingError("A moderator has muted you for text-to-speech in this server.")
        guild = await self.store.get_guild_settings(guild_id)
        check_roles(guild, role_ids)
        return guild

    async def options_for(
        self,
        guild_id: int | None,
        user_id: int,
        guild: GuildSettings,
        *,
        voice: str | None = None,
        speed: float | None = None,
        format: AudioFormat | None = None,
        instructions: str | None = None,
        output: SpeakOutput | None = None,
    ) -> SpeakOptions:
        """:func:`resolve_options` with the user's stored preferences (what was asked for: its keyword arguments).

        A stored voice or speed the bot no longer offers is cleared here, so the user is told exactly once.
        """
        prefs = await self.store.get_user_prefs(user_id, guild_id)
        options = resolve_options(
            self.settings, guild, prefs, member_id=user_id, voice=voice, speed=speed, format=format,
            instructions=instructions, output=output,
        )
        if options.notices:
            offered, speeds = self.settings.speech_voices, self.settings.speed_range
            for scope in {None, guild_id}:
                stored = await self.store.get_user_prefs(user_id, scope)
                stale: UserPrefsChanges = {}
                if stored.voice not in (None, *offered):
                    stale["voice"] = None
                if stored.speed is not None and stored.speed not in speeds:
                    stale["speed"] = None
                if stale:
                    await self.store.set_user_prefs(user_id, scope, **stale)
        return options

    async def forget_user(self, user_id: int) -> None:
        """Everything stored about the user, in the database and in memory."""
        await self.store.forget_user(user_id)
        self.rate_limiter.forget_user(user_id)
