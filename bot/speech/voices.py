"""The voices the bot offers: the endpoint's own list where it has one (``GET {base}/audio/voices``), narrowed by
``SPEECH_VOICES`` when that is set, else ``SPEECH_VOICES``, else the model's default list (``bot.speech.catalog``).

Asked at start (and by ``speechbot check``), then again while the bot runs (:class:`VoiceRefresher`): every 10
minutes, and soon after the server answered "voice not found" for a voice the bot offers. A new base URL or
model still means a restart.
Servers answer in several shapes (Kokoro-FastAPI ``{"voices": ["af_heart", ...]}``, loudness-tts
``{"object": "list", "data": [{"id": ...}]}``, others a bare list or objects with ``name``); a server without
the route (404, or a web page) simply has no list.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.config import Settings
from bot.speech.capabilities import EndpointCapabilities, VoiceSource
from bot.tasks import Supervisor

log = logging.getLogger(__name__)

#: More voices than this in a list are not offered (a catalogue of every voice ever made is not a choice).
MAX_VOICES = 1000
#: Longest voice name taken from a list (Discord's choice values stop at 100 characters).
MAX_VOICE_NAME = 100
_TIMEOUT = aiohttp.ClientTimeout(total=10)
#: Keys under which servers put a voice's name in a voice object, best first.
_NAME_KEYS = ("id", "voice_id", "name", "voice", "key")


def parse_voice_list(data: Any) -> tuple[str, ...] | None:
    """The voice names in a voices answer, in order and without duplicates; None when it is not a voice list."""
    items: Any = data
    if isinstance(data, Mapping):
        items = next((data[key] for key in ("voices", "data") if isinstance(data.get(key), list)), None)
    if not isinstance(items, list):
        return None
    names: list[str] = []
    for item in items:
        name = item
        if isinstance(item, Mapping):
            name = next((item[key] for key in _NAME_KEYS if isinstance(item.get(key), str)), None)
        if isinstance(name, str) and (name := name.strip()) and len(name) <= MAX_VOICE_NAME and name.isprintable():
            names.append(name)
    return tuple(dict.fromkeys(names))[:MAX_VOICES] if names else None


async def fetch_voice_list(
    session: aiohttp.ClientSession, base_url: str, api_key: str | None
) -> tuple[str, ...] | None:
    """``GET {base_url}/audio/voices``: the endpoint's voices, or None when it offers no list (the reason is
    logged for the operator; the key never is)."""
    voices, reason = await ask_voice_list(session, base_url, api_key)
    if reason is not None:
        log.info("the speech service has no voice list (%s)", reason)
    return voices


async def ask_voice_list(
    session: aiohttp.ClientSession, base_url: str, api_key: str | None
) -> tuple[tuple[str, ...] | None, str | None]:
    """``GET {base_url}/audio/voices`` (at most 10 s): the endpoint's voices and None, or None and why there is no
    list ("GET url: HTTP 404"; never the key)."""
    url = f"{base_url.rstrip('/')}/audio/voices"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        async with session.get(url, headers=headers, timeout=_TIMEOUT) as response:
            if response.status != 200:
                return None, f"GET {url}: HTTP {response.status}"
            data = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return None, f"GET {url}: {type(exc).__name__}"
    except ValueError:
        return None, f"GET {url}: not JSON"
    voices = parse_voice_list(data)
    if voices is None:
        return None, f"GET {url}: no voices in the answer"
    return voices, None


@dataclass(frozen=True, slots=True)
class VoiceOffer:
    """What users are offered, the default voice, where the list came from, and what the operator should hear."""

    voices: tuple[str, ...]
    default_voice: str
    source: VoiceSource
    warnings: list[str] = field(default_factory=list)


def choose_voices(
    configured: Sequence[str], configured_set: bool, default_voice: str, listed: Sequence[str] | None
) -> VoiceOffer:
    """The offer from the settings' voices (``SPEECH_VOICES`` if ``configured_set``, else the model's default list)
    and the server's list, if any.

    With a list: ``SPEECH_VOICES`` narrows it (a voice it names that the server lacks is dropped, with a warning;
    none left means the setting is kept, the server's refusals will say why); without ``SPEECH_VOICES`` the list is
    the offer, with the default voice first when the server does not list it (servers map OpenAI's names onto
    their voices; ``speechbot check`` tries it). A default voice ``SPEECH_VOICES`` leaves out gives way to the first
    offered voice (a warning).
    """
    warnings: list[str] = []
    if not listed:
        source = VoiceSource.SETTING if configured_set else VoiceSource.MODEL
        voices = tuple(configured)
    elif configured_set:
        voices = tuple(v for v in configured if v in set(listed))
        if missing := [v for v in configured if v not in set(listed)]:
            warnings.append(
                f"SPEECH_VOICES names voices the speech server does not list: {', '.join(missing)[:200]}"
                + ("; they are not offered" if voices else "; none of SPEECH_VOICES is listed, so all are kept")
                + f". It lists {len(listed)}: {', '.join(listed[:10])}{', ...' if len(listed) > 10 else ''}."
            )
        source = VoiceSource.SERVER_AND_SETTING if voices else VoiceSource.SETTING
        voices = voices or tuple(configured)
    else:
        voices, source = tuple(listed), VoiceSource.SERVER
        if default_voice not in voices:
            # compatible servers take OpenAI's names for voices of their own (Kokoro-FastAPI's openai_mappings,
            # loudness-tts's default voice) without listing them: the default voice stays, first
            voices = (default_voice, *voices)[:MAX_VOICES]
    if default_voice not in voices:
        warnings.append(
            f"the default voice {default_voice!r} is not one of the voices offered, so {voices[0]!r} is the "
            "default; set SPEECH_DEFAULT_VOICE to choose another."
        )
        default_voice = voices[0]
    return VoiceOffer(voices, default_voice, source, warnings)


async def offered_voices(settings: Settings, session: aiohttp.ClientSession) -> tuple[Settings, VoiceOffer]:
    """``settings`` with the voices to offer and the default voice (the endpoint asked for its list), and the offer.

    Only the /audio/speech engine asks: the Realtime API's voices are its catalog's, the offline engine has one.
    """
    listed = None
    if settings.engine_name == "openai":
        key = settings.speech_api_key.get_secret_value() if settings.speech_api_key else None
        listed = await fetch_voice_list(session, settings.speech_api_base_url, key)
    offer = choose_voices(settings.speech_voices, settings.speech_voices_set, settings.default_voice, listed)
    return dataclasses.replace(settings, speech_voices=offer.voices, default_voice=offer.default_voice), offer


#: How often the server's voice list is asked again while the bot runs (seconds).
REFRESH_INTERVAL = 600.0
#: After the server refused a voice the bot offers, the list is asked again, but at most this often (seconds).
REFUSAL_DEBOUNCE = 60.0
#: Names shown per side in the log line of a changed list.
_NAMES_LOGGED = 10

#: Asks the server for its list: its voices and None, or None and why there is none (:func:`ask_voice_list`).
AskVoices = Callable[[], Awaitable[tuple[tuple[str, ...] | None, str | None]]]


class VoiceRefresher:
    """Keeps ``capabilities.voices`` (the live offer every reader reads) following the speech server's own list.

    The list is asked again every ``interval`` seconds, and soon after the endpoint said a voice the bot offers is
    unknown (``capabilities.voice_refused``), at most once per ``debounce`` seconds. Each new list goes through
    the same rule as at start (:func:`choose_voices`: ``SPEECH_VOICES`` narrows it); the default voice chosen at
    start stays offered, first, until a restart. A list that cannot be had (no answer, an error) keeps the last
    good one, said once. A change is logged in one INFO line. ``clock`` drives the schedule; :meth:`wake` makes
    the running loop look at it again (tests that move an injected clock).
    """

    def __init__(
        self,
        capabilities: EndpointCapabilities,
        ask: AskVoices,
        *,
        configured: Sequence[str],
        configured_set: bool,
        default_voice: str,
        interval: float = REFRESH_INTERVAL,
        debounce: float = REFUSAL_DEBOUNCE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capabilities = capabilities
        self._ask = ask
        self._configured = tuple(configured)
        self._configured_set = configured_set
        self.default_voice = default_voice
        self.interval = interval
        self.debounce = debounce
        self._clock = clock
        self._last = clock()  # the list was asked at start
        self._next = self._last + interval
        self._wake = asyncio.Event()
        self._failing = False
        #: Lists asked for since start (by the schedule or after a refusal), and of those, the ones dealt with.
        self.refreshes = 0
        self.completed = 0
        self._progress = asyncio.Condition()
        self.tasks = Supervisor("voice list")
        capabilities.on_voice_refused = self.voice_refused

    def start(self) -> None:
        self.tasks.spawn(self._run(), name="voice-list refresh")

    async def close(self) -> None:
        self.capabilities.on_voice_refused = None
        await self.tasks.close()

    def voice_refused(self, voice: str) -> None:
        """The server refused ``voice``, which the bot offers: ask its list again now, or a minute after the last
        time it was asked."""
        due = max(self._clock(), self._last + self.debounce)
        if due < self._next:
            log.info("the speech server refused the voice %r, which the bot offers: asking for its voice list again",
                     voice[:MAX_VOICE_NAME])
            self._next = due
        self._wake.set()

    async def wait_completed(self, count: int) -> None:
        """Until ``count`` refreshes since start have been dealt with (tests; a caller bounds the wait)."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.completed >= count)

    def wake(self) -> None:
        """Look at the clock again now (the loop otherwise waits until the next refresh is due)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            wait = self._next - self._clock()
            if wait > 0:
                self._wake.clear()
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                if self._clock() < self._next:
                    continue
            try:
                await self.refresh()
            except Exception:  # the schedule outlives one bad answer
                log.exception("asking the speech server for its voice list failed")

    async def refresh(self) -> bool:
        """Ask the server's list now and offer what it gives; True when the offer changed."""
        self._last = self._clock()
        self._next = self._last + self.interval
        self.refreshes += 1
        try:
            return self._offer(*await self._ask())
        finally:
            self.completed += 1
            async with self._progress:
                self._progress.notify_all()

    def _offer(self, listed: tuple[str, ...] | None, reason: str | None) -> bool:
        """Offer what the server listed (None: keep the last good list; ``reason``: why there is none)."""
        offered = self.capabilities.voices
        if listed is None:
            if not self._failing:
                self._failing = True
                had_list = self.capabilities.voice_source in (VoiceSource.SERVER, VoiceSource.SERVER_AND_SETTING)
                log.log(logging.WARNING if had_list else logging.DEBUG,
                        "the speech server's voice list could not be asked again (%s): the %d voices offered stay",
                        reason, len(offered))
            return False
        if self._failing:
            self._failing = False
            log.info("the speech server's voice list answers again")
        offer = choose_voices(self._configured, self._configured_set, self.default_voice, listed)
        voices = offer.voices
        if self.default_voice not in voices:  # chosen at start: stays until a restart
            voices = (self.default_voice, *voices)[:MAX_VOICES]
        if voices == offered:
            return False
        for warning in offer.warnings:
            if warning.startswith("SPEECH_VOICES"):
                log.warning("%s", warning)
        self.capabilities.voices, self.capabilities.voice_source = voices, offer.source
        before, after = set(offered), set(voices)
        added = [v for v in voices if v not in before]
        removed = [v for v in offered if v not in after]
        log.info("voices: the speech server's list changed: %d offered (was %d); added %d: %s; removed %d: %s",
                 len(voices), len(offered), len(added), _names(added), len(removed), _names(removed))
        return True


def _names(voices: Sequence[str]) -> str:
    shown = ", ".join(v[:40] for v in voices[:_NAMES_LOGGED])
    return (shown + (", ..." if len(voices) > _NAMES_LOGGED else "")) or "none"
