"""What one speech endpoint can do, as found out since start: one object, shared by the client that learns it,
the speech service that tells users about it, and ``/settings show`` and ``speechbot check`` that show it.

Kept in memory only: a restart (a new base URL or model) starts again from nothing, and the facts are learnt
again from the endpoint's answers (formats, instructions, pcm rate), its voice list and the measuring of
``bot.speech.probe``.

``voices`` is the one live list of the voices offered: every reader (the policy, the speech service and its
clients, the cogs' autocomplete, validation, ``/voices`` and the picker, distinct voices) reads it when it needs
it, and ``bot.speech.voices.VoiceRefresher`` replaces it when the server's list changes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.audio.formats import AudioFormat
from bot.config import Settings
from bot.i18n import ENGLISH, N_, Text, translate
from bot.speech.catalog import SpeedRange


class VoiceSource(StrEnum):
    """Where the offered voices come from."""

    SERVER = N_("the server's list")
    SERVER_AND_SETTING = N_("SPEECH_VOICES, of those the server lists")
    SETTING = N_("SPEECH_VOICES")
    MODEL = N_("the model's default list")


@dataclass(eq=False)
class EndpointCapabilities:
    """The endpoint's abilities; ``None`` means "not known yet" wherever it appears."""

    voices: tuple[str, ...] = ()
    voice_source: VoiceSource = VoiceSource.MODEL
    refused_formats: set[AudioFormat] = field(default_factory=set)
    #: The last format playback got from the endpoint (what voice and read-aloud receive).
    playback_format: AudioFormat | None = None
    instructions: bool | None = None
    #: The pcm sample rate the endpoint announced (None: not announced, or no pcm asked for yet).
    pcm_rate: int | None = None
    #: The speeds the endpoint honours (measured or ``SPEECH_SPEED_RANGE``); ``SpeedRange(1, 1)``: it ignores speed.
    speeds: SpeedRange | None = None
    speeds_declared: bool = False
    #: Whether two voices sound different (None: not measured).
    voice_honoured: bool | None = None
    #: Why measuring was skipped or failed, for the operator (None: measured, or not yet).
    probe_note: str | None = None
    #: Told when the endpoint answered that a voice is unknown or unavailable (the voice refresher listens).
    on_voice_refused: Callable[[str], None] | None = field(default=None, repr=False)
    _settings_cache: tuple[Settings, tuple[str, ...], Settings] | None = field(default=None, init=False, repr=False)

    def voice_refused(self, voice: str) -> None:
        """The endpoint said ``voice`` is unknown or unavailable: a voice the bot offers makes its list be asked
        again (``on_voice_refused``)."""
        if self.on_voice_refused is not None and voice in self.voices:
            self.on_voice_refused(voice)

    def offered(self, settings: Settings) -> Settings:
        """``settings`` with the voices offered now (``speech_voices``): what the policy and the cogs read, so a
        refreshed list reaches every reader without anything else changing."""
        cached = self._settings_cache
        if cached is not None and cached[0] is settings and cached[1] is self.voices:
            return cached[2]
        # nothing known (no voices): the settings' own list
        live = settings if not self.voices or settings.speech_voices == self.voices else dataclasses.replace(
            settings, speech_voices=self.voices)
        self._settings_cache = (settings, self.voices, live)
        return live

    def speed_notice(self, speed: float) -> str | None:
        """What to tell a user whose ``speed`` the endpoint will not honour, or None (English)."""
        notice = self.speed_notice_text(speed)
        return None if notice is None else notice.render(ENGLISH)

    def speed_notice_text(self, speed: float) -> Text | None:
        """:meth:`speed_notice` as a catalogue message, said later in the language of whoever reads it."""
        speeds = self.speeds
        if speeds is None or speed in speeds:
            return None
        if speeds.low == speeds.high == 1.0:
            return Text(N_("This bot's speech server ignores speed, so {speed}× sounds like 1×."), {"speed": speed})
        nearest = min(max(speed, speeds.low), speeds.high)
        return Text(
            N_("This bot's speech server speaks at speeds from {low} to {high} only, so {speed}× sounds like "
               "{nearest}×."),
            {"low": speeds.low, "high": speeds.high, "speed": speed, "nearest": nearest},
        )

    def describe(self, language: str = ENGLISH) -> list[str]:
        """One short line per fact, for ``/settings show`` (in the reader's ``language``) and ``speechbot check``."""
        lines = [translate(language, "voices: {count} from {source}", count=len(self.voices),
                           source=translate(language, self.voice_source.value))]
        if self.refused_formats:
            refused = ", ".join(sorted(f.value for f in self.refused_formats))
            if self.playback_format:
                lines.append(translate(language, "formats: cannot make {refused} (voice playback gets {format}, "
                                       "transcoded)", refused=refused, format=self.playback_format.value))
            else:
                lines.append(translate(language, "formats: cannot make {refused} (voice playback asks for wav or "
                                       "pcm, transcoded)", refused=refused))
        elif self.playback_format is not None:
            lines.append(translate(language, "formats: voice playback gets {format}",
                                   format=self.playback_format.value))
        else:
            lines.append(translate(language, "formats: no refusal so far"))
        if self.pcm_rate is not None:
            lines.append(translate(language, "pcm rate: {rate} Hz", rate=str(self.pcm_rate)))
        if self.instructions is None:
            lines.append(translate(language, "instructions: not tried yet"))
        elif self.instructions:
            lines.append(translate(language, "instructions: accepted"))
        else:
            lines.append(translate(language, "instructions: not accepted (left out)"))
        if self.speeds is None:
            lines.append(translate(language, "speed range: not measured ({note})", note=self.probe_note)
                         if self.probe_note else translate(language, "speed range: not measured"))
        elif self.speeds.low == self.speeds.high == 1.0:
            lines.append(translate(language, "speed: ignored by the server (declared)") if self.speeds_declared
                         else translate(language, "speed: ignored by the server (measured)"))
        else:
            speeds = self.speeds.in_words(language)
            lines.append(translate(language, "speed range: {speeds} (declared)", speeds=speeds) if self.speeds_declared
                         else translate(language, "speed range: {speeds} (measured)", speeds=speeds))
        if self.voice_honoured is None:
            lines.append(translate(language, "voice honoured: not measured ({note})", note=self.probe_note)
                         if self.probe_note else translate(language, "voice honoured: not measured"))
        elif self.voice_honoured:
            lines.append(translate(language, "voice honoured: yes"))
        else:
            lines.append(translate(language, "voice honoured: no: every voice sounds the same"))
        return lines
