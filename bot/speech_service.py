"""Speech for every caller (``/speak``, read-aloud, ...): who may, what it will cost, which engine, what it counted.

One path for all of them, so they refuse the same people with the same words and count the same way:

1. :meth:`SpeechService.admit` — the member's standing (mutes, roles), the options (the member's, the server's,
   the bot's), the request validated for the engine; then, unless the audio is already in the cache, the
   member's rate and the server's budgets, *reserved* (``bot.usage``) so that concurrent requests cannot
   overspend. Refusals are :class:`~bot.errors.UserFacingError` with a message for the member; nothing has been
   sent anywhere.
2. :meth:`SpeechService.open` / :meth:`SpeechService.read_whole` — the audio from the cache, else the primary
   engine, else a fallback (``bot.speech.failover``); then the reservation settles: counted against the budgets
   when the speech service spoke, shown in ``/usage`` when a fallback engine did, released when the cache
   answered or the request failed.
3. :meth:`SpeechService.release` — a request that will never be opened (a queued item skipped or cleared).

Nothing here knows Discord: callers pass ids and role ids.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from bot.audio.formats import AudioFormat
from bot.config import Settings
from bot.errors import UserFacingError
from bot.i18n import Text
from bot.owner_controls import OwnerControls
from bot.policy import Policy, SpeakOptions
from bot.setting_choices import SpeakOutput, SpeechLanguage
from bot.speech.cache import CacheStats
from bot.speech.capabilities import EndpointCapabilities
from bot.speech.errors import SpeechError
from bot.speech.failover import FailoverSpeech, Served
from bot.speech.models import PLAYBACK_FORMAT, SpeechRequest, SynthesizedAudio, validate_request
from bot.storage import GuildSettings
from bot.usage import Reservation, UsageLedger

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Admitted:
    """A request that may be spoken: what to say and how, and what it holds of the server's budgets."""

    request: SpeechRequest
    guild_id: int | None
    user_id: int
    reservation: Reservation | None = None  # None: expected from the cache, or outside a server
    #: Something to tell the member once (a saved choice no longer offered), worded in their language when told.
    notices: tuple[Text, ...] = ()
    output: SpeakOutput = SpeakOutput.FILE


class SpeechService:
    """The one way the bot asks for speech (module docstring)."""

    def __init__(
        self, speech: FailoverSpeech, policy: Policy, ledger: UsageLedger, settings: Settings,
        controls: OwnerControls | None = None, capabilities: EndpointCapabilities | None = None,
    ) -> None:
        self.controls = controls
        self.speech = speech
        self.policy = policy
        self.ledger = ledger
        self._settings = settings
        #: What the speech endpoint honours: a speed it will not is told to the member, not refused; and the
        #: voices offered now (the policy's, refreshed while the bot runs).
        self.capabilities = capabilities or policy.capabilities

    @property
    def settings(self) -> Settings:
        """The bot's settings with the voices offered now (``capabilities.voices``)."""
        return self.capabilities.offered(self._settings)

    @property
    def voices(self) -> tuple[str, ...]:
        """The voices offered now."""
        return self.settings.speech_voices

    @property
    def stats(self) -> CacheStats:
        return self.speech.stats

    async def admit(
        self,
        guild_id: int | None,
        user_id: int,
        role_ids: Iterable[int],
        *,
        text: str,
        voice: str | None = None,
        format: AudioFormat | None = None,
        speed: float | None = None,
        instructions: str | None = None,
        output: SpeakOutput | None = None,
    ) -> Admitted:
        """Everything before anything is sent, for a member's own request (``/speak``)."""
        guild = GuildSettings()
        if guild_id is not None:
            guild = await self.policy.check_member(guild_id, user_id, role_ids)
        options = await self.policy.options_for(
            guild_id, user_id, guild, voice=voice, speed=speed, format=format, instructions=instructions,
            output=output,
        )
        # A voice message is Ogg Opus whatever file format was chosen; in voice only, the file format setting has
        # no say either: playback asks for what is cheapest to play (and accepts what the server can make).
        playback = options.output is SpeakOutput.VOICE
        fmt = AudioFormat.OPUS if options.output is SpeakOutput.VOICE_MESSAGE else options.format
        # In a server set to another language, the offline engine speaks with that language's voice (LOCAL_VOICES)
        language = None if guild.language is SpeechLanguage.EN else guild.language.value
        request = self.validate(SpeechRequest(
            text=text, voice=options.voice, format=PLAYBACK_FORMAT if playback else fmt,
            speed=options.speed, instructions=options.instructions, playback=playback, language=language,
        ))
        admitted = await self.admit_request(guild_id, user_id, request, guild)
        speed_notice = self.capabilities.speed_notice_text(request.speed)  # said in the caller's language
        admitted.notices = options.notices + ((speed_notice,) if speed_notice else ())
        admitted.output = options.output
        return admitted

    def validate(self, request: SpeechRequest) -> SpeechRequest:
        """``request`` checked against what the engine offers (voices, speeds, formats, lengths)."""
        return validate_request(request, self.settings.speech_voices, speeds=self.settings.speed_range)

    async def options_for(self, guild_id: int | None, user_id: int, guild: GuildSettings) -> SpeakOptions:
        return await self.policy.options_for(guild_id, user_id, guild)

    async def voice_of(self, guild_id: int, user_id: int) -> SpeakOptions:
        """Another member's voice, speed and style in a server, as their own requests get them ("Speak with their
        voice")."""
        guild = await self.policy.store.get_guild_settings(guild_id)
        return await self.policy.options_for(guild_id, user_id, guild)

    async def blocked(self, guild_id: int | None, user_id: int) -> str | None:
        """The line a server or user blocked by the bot's owner gets, or None."""
        if self.controls is None:
            return None
        await self.controls.refresh()
        return self.controls.refusal(guild_id, user_id)

    async def check_member(self, guild_id: int, user_id: int, role_ids: Iterable[int]) -> GuildSettings:
        return await self.policy.check_member(guild_id, user_id, role_ids)

    async def admit_request(
        self, guild_id: int | None, user_id: int, request: SpeechRequest, guild: GuildSettings
    ) -> Admitted:
        """The rate and the budgets for a request already built (read-aloud builds its own)."""
        if refusal := await self.blocked(guild_id, user_id):  # the last guard: nothing is sent for them
            raise UserFacingError(refusal)
        admitted = Admitted(request, guild_id, user_id)
        if guild_id is None or self.speech.has(request):  # a cache hit sends nothing, so costs nothing
            return admitted
        characters = len(request.text)
        reservation = await self.ledger.reserve(guild_id, user_id, characters, guild)
        if guild.user_chars_per_minute is not None:  # after the budgets: a refused request takes no rate
            try:
                self.policy.rate_limiter.admit(guild_id, user_id, characters, guild.user_chars_per_minute)
            except UserFacingError:
                self.ledger.release(reservation)
                raise
        admitted.reservation = reservation
        return admitted

    async def open(self, admitted: Admitted, *, persist: bool = True, batched: bool = False) -> Served:
        """The audio, streaming; the reservation settles once the engine answered (``batched``: usage written
        with the next batch, for read-aloud)."""
        try:
            served = await self.speech.open_tracked(admitted.request, persist=persist)
        except BaseException:
            self.release(admitted)
            raise
        await self._settle(admitted, served, batched=batched)
        return served

    async def read_whole(self, admitted: Admitted) -> tuple[SynthesizedAudio, Served]:
        """The audio as one file (uploads); settled once it is whole."""
        try:
            audio, served = await self.speech.read_whole(admitted.request)
        except BaseException:
            self.release(admitted)
            raise
        await self._settle(admitted, served)
        return audio, served

    def release(self, admitted: Admitted) -> None:
        """The request will not be spoken: give back what it reserved (idempotent)."""
        if admitted.reservation is not None:
            self.ledger.release(admitted.reservation)

    async def _settle(self, admitted: Admitted, served: Served, *, batched: bool = False) -> None:
        if admitted.guild_id is None:
            return
        if not served.origin.sent:
            self.release(admitted)
        elif admitted.reservation is not None:
            await self.ledger.settle(admitted.reservation, fallback=served.fallback, batched=batched)
        else:  # expected from the cache, but it had gone by the time it was opened: still counted
            await self.ledger.count(admitted.guild_id, admitted.user_id, len(admitted.request.text),
                                    fallback=served.fallback, batched=batched)

    async def forget_user(self, user_id: int) -> None:
        await self.policy.forget_user(user_id)


def refusal(error: Exception) -> SpeechError:
    """A refusal from :meth:`SpeechService.admit` as a speech error, for callers that report those."""
    return SpeechError(error.text if isinstance(error, UserFacingError) else str(error))
