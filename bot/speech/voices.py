"""The voices the bot offers: the endpoint's own list where it has one (``GET {base}/audio/voices``), narrowed by
``SPEECH_VOICES`` when that is set, else ``SPEECH_VOICES``, else the model's default list (``bot.speech.catalog``).

Asked once at start (and by ``speechbot check``): a new base URL or model means a restart, and so a new list.
Servers answer in several shapes (Kokoro-FastAPI ``{"voices": ["af_heart", ...]}``, loudness-tts
``{"object": "list", "data": [{"id": ...}]}``, others a bare list or objects with ``name``); a server without
the route (404, or a web page) simply has no list.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.config import Settings
from bot.speech.capabilities import VoiceSource

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
    url = f"{base_url.rstrip('/')}/audio/voices"
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        async with session.get(url, headers=headers, timeout=_TIMEOUT) as response:
            if response.status != 200:
                log.info("the speech service has no voice list (GET %s: HTTP %s)", url, response.status)
                return None
            data = await response.json(content_type=None)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.info("the speech service has no voice list (GET %s: %s)", url, type(exc).__name__)
        return None
    except ValueError:
        log.info("the speech service has no voice list (GET %s: not JSON)", url)
        return None
    voices = parse_voice_list(data)
    if voices is None:
        log.info("the speech service has no voice list (GET %s: no voices in the answer)", url)
    return voices


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
