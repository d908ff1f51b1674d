"""Turning an endpoint's error response into one user-safe :class:`SpeechError`.

Compatible servers shape their error bodies differently (OpenAI/LocalAI, Kokoro-FastAPI, openedai-speech,
openai-edge-tts, Orpheus, proxies' HTML pages), so every known shape is parsed and the raw text is the
fallback. Whatever the server said is redacted before it can reach a user or a log line: a misconfigured
proxy may echo the request's ``Authorization`` header back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.i18n import N_, Text
from bot.speech.errors import (
    SpeechAuthError,
    SpeechError,
    SpeechRateLimitError,
    SpeechRejectedError,
    SpeechServiceError,
    SpeechTimeoutError,
)
from bot.speech.retry import is_retryable, retry_after_seconds

#: How much of the endpoint's own message a user sees (the rest is noise in a Discord reply); a longer one keeps
#: its start and its end, where servers list what they can do ("... use wav or pcm").
MAX_DETAIL_CHARS = 200
#: How much of the endpoint's message the operator sees (``SpeechError.detail``: logs, CLI errors).
MAX_OPERATOR_CHARS = 1000
#: How much of a non-JSON body is considered at all.
MAX_RAW_CHARS = MAX_OPERATOR_CHARS

REDACTED = "[redacted]"
_KEY_PATTERNS = (
    re.compile(r"\bBearer\s+\S+", re.IGNORECASE),
    re.compile(r"\bsk-[A-Za-z0-9_\-*]{6,}"),
)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")

MSG_AUTH = N_("The speech service rejected the bot's API key. Ask the bot owner to check SPEECH_API_KEY.")
MSG_FORBIDDEN = N_("The speech service refused the request (permission or region).")
MSG_QUOTA = N_("The speech service is out of credit.")
MSG_RATE_LIMITED = N_("The speech service is busy (rate limited). Try again in a moment.")
MSG_REJECTED = N_("The speech service rejected the request: {detail}")
MSG_REJECTED_SILENTLY = N_("The speech service rejected the request: no details given.")
MSG_NOT_FOUND = N_("The speech endpoint or model was not found. Check SPEECH_API_BASE_URL and SPEECH_MODEL.")
MSG_SERVER = N_("The speech service is having problems. Try again later.")
MSG_TIMEOUT = N_("The speech service took too long to answer.")
MSG_OTHER = N_("The speech service refused the request (HTTP {status}).")
MSG_OTHER_WHY = N_("The speech service refused the request (HTTP {status}): {detail}")
#: A reason saying the voice, model or format asked for is unknown or unavailable: permanent whatever the status.
MSG_UNKNOWN = {
    "voice": N_("The speech service doesn't know the voice {value}. Try another voice."),
    "model": N_("The speech service doesn't know the model {value}. Ask the bot owner to check SPEECH_MODEL."),
    "format": N_("The speech service can't make {value} audio. Try another format."),
}
_UNAVAILABLE = re.compile(
    r"\b(unknown|not found|no such|not available|unavailable|does not exist|doesn't exist|not downloaded|"
    r"not installed|not supported|unsupported|no voice called|no model called|invalid)\b",
    re.IGNORECASE,
)
#: "unknown error" and the like say nothing of what was asked for.
_NOT_ABOUT_IT = re.compile(r"\b(unknown|invalid)\s+(error|exception|failure|state|response)\b", re.IGNORECASE)
#: Characters between a subject and what is said of it ("Voice 'en_US-lessac-medium' is not available").
_NEAR = 60
_SUBJECTS = (
    ("voice", re.compile(r"\b(voices?|speakers?)\b", re.IGNORECASE)),
    ("model", re.compile(r"\bmodels?\b", re.IGNORECASE)),
    ("format", re.compile(r"\b(response format|format|ffmpeg)\b", re.IGNORECASE)),
)

QUOTA_CODE = "insufficient_quota"


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """What an error body says, whatever its shape. Every field may be missing."""

    message: str | None = None
    code: str | None = None
    type: str | None = None
    param: str | None = None


def parse_error_body(body: bytes) -> ErrorDetail:
    """Read ``body`` in the order of the speech note §4.1: OpenAI ``error`` object, ``error`` string, FastAPI
    ``detail`` (object, list or string), flat ``message``; otherwise the start of the raw text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data: Any = json.loads(text)
    except ValueError:
        return ErrorDetail(message=_raw_message(text))
    if not isinstance(data, dict):
        return ErrorDetail(message=_raw_message(text))
    error = data.get("error")
    if isinstance(error, dict):
        return ErrorDetail(
            _str(error.get("message")), _str(error.get("code")), _str(error.get("type")), _str(error.get("param"))
        )
    if isinstance(error, str):
        return ErrorDetail(message=error)
    detail = data.get("detail")
    if isinstance(detail, dict):
        return ErrorDetail(_str(detail.get("message")), _str(detail.get("error")), _str(detail.get("type")))
    if isinstance(detail, list):
        return ErrorDetail(message=_fastapi_problems(detail), param=_fastapi_field(detail))
    if isinstance(detail, str):
        return ErrorDetail(message=detail)
    if "message" in data:
        return ErrorDetail(
            _str(data.get("message")), _str(data.get("code")), _str(data.get("type")), _str(data.get("param"))
        )
    return ErrorDetail(message=_raw_message(text))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide the given secret values and anything shaped like an API key or a bearer token."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _KEY_PATTERNS:
        text = pattern.sub(REDACTED, text)
    return text


def unavailable_subject(message: str | None, code: str | None = None, param: str | None = None) -> str | None:
    """"voice", "model" or "format" when an error says that what was asked is unknown or unavailable
    ("Voice 'x' not found", "en_US-y is not downloaded yet", "model_not_found"), else None."""
    said = " ".join(part.replace("_", " ") for part in (message, code, param) if part)
    said = _NOT_ABOUT_IT.sub(" ", said)
    states = [m.start() for m in _UNAVAILABLE.finditer(said)]
    if not states:
        return None
    for subject, pattern in _SUBJECTS:  # the subject near what is said of it, not anywhere in a long message
        if any(abs(m.start() - at) <= _NEAR for m in pattern.finditer(said) for at in states):
            return subject
    if re.search(r"not downloaded", said, re.IGNORECASE):  # Piper servers download voices, nothing else
        return "voice"
    return None


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secrets: Iterable[str] = (),
    asked: Mapping[str, str] | None = None,
) -> SpeechError:
    """Map a non-200 answer to a typed SpeechError with a short message a user may see.

    ``retryable`` follows the retry rules of the speech note §4.3, including the ``x-should-retry`` override;
    ``retry_after`` is the delay the server asked for, if it said so. A 5xx whose reason says the voice, model
    or format asked for (``asked``: the request body) is unknown or unavailable is a permanent refusal, not an
    outage: never retried, never counted by the circuit breaker. ``detail`` keeps the server's whole reason
    (secrets removed; start and end of a very long one) for the operator.
    """
    parsed = parse_error_body(body)
    full = " ".join(redact(parsed.message, secrets).split()) if parsed.message else None
    detail = _trim(full, MAX_OPERATOR_CHARS) if full else None
    shown = _trim(full) if full else None
    quota = QUOTA_CODE in (parsed.code, parsed.type)
    subject = unavailable_subject(parsed.message, parsed.code, parsed.param)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": parsed.code,
        "retryable": is_retryable(status, headers, quota=quota),
        "retry_after": retry_after_seconds(headers),
        "detail": detail,
        "param": parsed.param,
    }
    if subject is not None and status >= 500:
        asked = asked or {}
        value = asked.get("response_format" if subject == "format" else subject, "asked for")
        kwargs["retryable"] = False
        shown_value = value if subject == "format" else repr(value)
        return SpeechRejectedError(Text(MSG_UNKNOWN[subject], {"value": shown_value}), unavailable=subject, **kwargs)
    if status == 401:
        return SpeechAuthError(MSG_AUTH, **kwargs)
    if status == 403:
        return SpeechAuthError(MSG_FORBIDDEN, **kwargs)
    if status == 429:
        return SpeechRateLimitError(MSG_QUOTA if quota else MSG_RATE_LIMITED, **kwargs)
    if subject is not None:
        kwargs["unavailable"] = subject
    if status in (400, 422):
        return SpeechRejectedError(Text(MSG_REJECTED, {"detail": shown}) if shown else MSG_REJECTED_SILENTLY, **kwargs)
    if status == 404:
        return SpeechRejectedError(MSG_NOT_FOUND, **kwargs)
    if status == 408:
        return SpeechTimeoutError(MSG_TIMEOUT, **kwargs)
    if status == 409 or status >= 500:
        return SpeechServiceError(MSG_SERVER, **kwargs)
    if shown:
        return SpeechRejectedError(Text(MSG_OTHER_WHY, {"status": str(status), "detail": shown}), **kwargs)
    return SpeechRejectedError(Text(MSG_OTHER, {"status": str(status)}), **kwargs)


def _str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _fastapi_problems(items: list[Any]) -> str | None:
    """``[{"loc": [...], "msg": ...}, ...]`` → "input: too long; voice: required". ``input`` values are skipped:
    FastAPI copies the offending value there, which may be the user's text."""
    problems = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("msg"), str):
            continue
        loc = [str(part) for part in item.get("loc", []) if part != "body"]
        problems.append(f"{'.'.join(loc)}: {item['msg']}" if loc else item["msg"])
    return "; ".join(problems) or None


def _fastapi_field(items: list[Any]) -> str | None:
    """The body field the first FastAPI problem is about (``["body", "instructions"]`` → "instructions")."""
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("loc"), list):
            loc = [str(part) for part in item["loc"] if part != "body"]
            if loc:
                return loc[0]
    return None


def _raw_message(text: str) -> str | None:
    """The start of a non-JSON body; for an HTML page its title (a proxy's "502 Bad Gateway"), not markup."""
    if text.startswith("<"):
        title = _HTML_TITLE.search(text)
        text = title.group(1) if title else _TAG.sub(" ", text)
    return _trim(" ".join(text.split()), MAX_RAW_CHARS) or None


def _trim(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """``text`` on one line, cut in the middle when longer than ``limit``: a server's reason often ends with what
    to do instead ("... use wav or pcm")."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    head = (limit - 3) * 2 // 3
    tail = limit - 3 - head
    return text[:head].rstrip() + " … " + text[-tail:].lstrip()
