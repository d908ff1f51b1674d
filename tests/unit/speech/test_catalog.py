"""What each engine offers and which models are being shut down, as the settings, ``speechbot check`` and the
start-up log say it."""

from __future__ import annotations

import logging
from datetime import date

import pytest

from bot.config import load_settings
from bot.diagnostics import check_model_shutdown, speech_summary
from bot.speech.catalog import REALTIME_SPEEDS, is_realtime_model, is_realtime_voice, shutdown_date

KEY = {"SPEECH_API_KEY": "sk-x"}


@pytest.mark.parametrize(
    ("model", "realtime", "shutdown"),
    [
        ("tts-1", False, date(2027, 1, 6)),
        ("tts-1-hd", False, date(2027, 1, 6)),
        ("gpt-4o-mini-tts", False, date(2027, 1, 6)),
        ("gpt-realtime", True, date(2027, 1, 20)),
        ("gpt-realtime-mini", True, date(2027, 1, 20)),
        ("gpt-realtime-2.1-mini", True, None),
        ("kokoro", False, None),
    ],
)
def test_models_are_told_apart_and_their_shutdowns_known(model: str, realtime: bool, shutdown: date | None) -> None:
    assert is_realtime_model(model) is realtime
    assert shutdown_date(model) == shutdown


def test_realtime_voices_and_speeds() -> None:
    assert is_realtime_voice("marin") and is_realtime_voice("voice_abc123")
    assert not is_realtime_voice("nova") and not is_realtime_voice("voice_")
    assert 0.25 in REALTIME_SPEEDS and 1.5 in REALTIME_SPEEDS and 1.51 not in REALTIME_SPEEDS
    assert "fast" not in REALTIME_SPEEDS  # type: ignore[operator]


def test_a_deprecated_model_is_a_warning_until_its_day_then_a_problem() -> None:
    settings = load_settings({**KEY, "SPEECH_MODEL": "tts-1"})
    before = check_model_shutdown(settings, today=date(2026, 12, 1))
    assert before is not None and before.ok and before.warning
    assert before.what == "speech: the model tts-1 shuts down on 2027-01-06"
    assert "SPEECH_MODEL=gpt-realtime-2.1-mini" in before.detail and "https://api.openai.com/v1" in before.detail
    after = check_model_shutdown(settings, today=date(2027, 1, 6))
    assert after is not None and not after.ok and not after.warning and "was shut down on 2027-01-06" in after.what
    realtime = check_model_shutdown(load_settings({**KEY, "SPEECH_MODEL": "gpt-realtime"}), today=date(2026, 12, 1))
    assert realtime is not None and realtime.detail == "Set SPEECH_MODEL=gpt-realtime-2.1-mini, OpenAI's replacement."
    # nothing to say for a current model, or when the offline engine speaks whatever SPEECH_MODEL says
    assert check_model_shutdown(load_settings({**KEY, "SPEECH_MODEL": "gpt-realtime-2.1-mini"})) is None
    assert check_model_shutdown(load_settings({"SPEECH_MODEL": "tts-1"})) is None


def test_the_start_up_log_names_the_engine_the_shutdown_and_the_fallback() -> None:
    settings = load_settings({**KEY, "SPEECH_MODEL": "gpt-4o-mini-tts"})
    lines = speech_summary(settings, ["openai", "local"])
    assert lines[0] == (logging.INFO, "speech: https://api.apimart.ai/v1/audio/speech, model gpt-4o-mini-tts")
    assert lines[1][0] == logging.WARNING and "shuts down on 2027-01-06" in lines[1][1]
    assert lines[2] == (logging.INFO, ("speech fallback: the offline engine (local) speaks when the speech service "
                                      "is down, out of credit or its model is gone"))
    realtime = load_settings({**KEY, "SPEECH_MODEL": "gpt-realtime-2.1-mini", "SPEECH_FALLBACK": "none"})
    assert [line for _, line in speech_summary(realtime, ["realtime"])] == [
        "speech: the Realtime API at https://api.apimart.ai/v1 (WebSocket), model gpt-realtime-2.1-mini",
        ("speech fallback: none: when the speech service fails, speech fails (SPEECH_FALLBACK=local speaks offline "
        "instead)"),
    ]
