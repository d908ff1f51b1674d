"""The settings loader: defaults, every error named, secrets redacted, and .env.example in sync."""

import re
from pathlib import Path

import pytest

from bot.audio.formats import AudioFormat
from bot.config import VARIABLES, ConfigError, Secret, SpeechBackendChoice, load_settings
from bot.diagnostics import check_local_voices

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_seed_docs() -> None:
    settings = load_settings({})
    assert settings.speech_api_base_url == "https://api.apimart.ai/v1"
    assert settings.speech_model == "gpt-4o-mini-tts"
    assert settings.speech_voices == ("alloy", "echo", "fable", "onyx", "nova", "shimmer")
    assert settings.speech_backend is SpeechBackendChoice.AUTO
    assert settings.default_format is AudioFormat.OPUS
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("speechbot.db")
    assert settings.uses_local_engine  # no key → offline engine


def test_audio_cache_settings_default_to_data_dir_and_are_given_in_mib() -> None:
    settings = load_settings({"DATA_DIR": "/srv/bot"})
    assert settings.audio_cache_dir == Path("/srv/bot/cache")
    assert (settings.cache_memory_bytes, settings.cache_disk_bytes) == (32 * 2**20, 512 * 2**20)
    custom = load_settings({"CACHE_DIR": "/var/cache/bot", "CACHE_MEMORY_MB": "0.5", "CACHE_DISK_MB": "0"})
    assert custom.audio_cache_dir == Path("/var/cache/bot")
    assert (custom.cache_memory_bytes, custom.cache_disk_bytes) == (2**19, 0)
    with pytest.raises(ConfigError) as info:
        load_settings({"CACHE_MEMORY_MB": "-1", "CACHE_DISK_MB": "lots"})
    assert [problem.split()[0] for problem in info.value.problems] == ["CACHE_MEMORY_MB", "CACHE_DISK_MB"]


def test_a_key_selects_the_endpoint_in_auto_mode() -> None:
    assert not load_settings({"SPEECH_API_KEY": "sk-abc"}).uses_local_engine
    assert load_settings({"SPEECH_API_KEY": "sk-abc", "SPEECH_BACKEND": "local"}).uses_local_engine


def test_every_problem_is_reported_at_once_and_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            {
                "SPEECH_API_BASE_URL": "ftp://nope",
                "SPEECH_BACKEND": "cloud",
                "SPEECH_DEFAULT_FORMAT": "mp4",
                "DEV_GUILD_ID": "my-server",
                "DATABASE_URL": "mysql://x",
                "LOG_LEVEL": "LOUD",
                "SPEECH_TIMEOUT": "-1",
                "SPEECH_DEFAULT_VOICE": "zeus",
                "DISCORD_GATEWAY_URL": "http://x",
            }
        )
    text = " ".join(info.value.problems)
    for name in (
        "SPEECH_API_BASE_URL",
        "SPEECH_BACKEND",
        "SPEECH_DEFAULT_FORMAT",
        "DEV_GUILD_ID",
        "DATABASE_URL",
        "LOG_LEVEL",
        "SPEECH_TIMEOUT",
        "SPEECH_DEFAULT_VOICE",
        "DISCORD_GATEWAY_URL",
    ):
        assert name in text
    assert len(info.value.problems) == 9


def test_voices_are_trimmed_and_deduplicated() -> None:
    settings = load_settings({"SPEECH_VOICES": " nova, alloy ,nova,, "})
    assert settings.speech_voices == ("nova", "alloy")
    assert settings.default_voice == "nova"


def test_secrets_never_show_in_repr() -> None:
    settings = load_settings({"DISCORD_TOKEN": "tok-SECRET-123", "SPEECH_API_KEY": "sk-SECRET-456"})
    text = repr(settings) + str(settings)
    assert "SECRET" not in text
    assert settings.discord_token == Secret("tok-SECRET-123")
    assert settings.speech_api_key is not None and settings.speech_api_key.get_secret_value() == "sk-SECRET-456"


def test_env_example_documents_exactly_the_loader_variables() -> None:
    example = (ROOT / ".env.example").read_text()
    # a commented-out line documents a variable whose default differs by where the bot runs (the image sets its own)
    documented = set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert documented == set(VARIABLES)
    # and every variable the loader reads is in VARIABLES
    assert variables_the_loader_reads() == set(VARIABLES)


class RecordingEnv(dict[str, str]):
    """An environment that notes every variable looked up in it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)


def variables_the_loader_reads() -> set[str]:
    """What ``load_settings`` looks up with an empty environment (seen from outside, however the source spells
    it), and every name its source passes to ``get``/``number`` (a variable read only when another is set)."""
    env = RecordingEnv()
    load_settings(env)
    source = (ROOT / "bot" / "config.py").read_text()
    return env.asked | set(re.findall(r'(?:get|number)\("([A-Z][A-Z0-9_]+)"', source))


def test_env_example_loads_cleanly() -> None:
    example = (ROOT / ".env.example").read_text()
    env = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", example, flags=re.MULTILINE))
    load_settings(env)


def test_sharding_is_off_by_default_so_discord_py_decides() -> None:
    settings = load_settings({})
    assert (settings.shard_count, settings.shard_ids) == (None, None)


@pytest.mark.parametrize(
    ("count", "ids", "expected"),
    [
        ("4", "", (4, None)),
        ("4", "0,1", (4, (0, 1))),
        ("4", "0-3", (4, (0, 1, 2, 3))),
        ("8", " 6 , 0 - 2,1 ", (8, (0, 1, 2, 6))),
        ("1", "0", (1, (0,))),
    ],
)
def test_shard_count_and_ids_accept_lists_and_ranges(count: str, ids: str, expected: tuple) -> None:
    settings = load_settings({"SHARD_COUNT": count, "SHARD_IDS": ids})
    assert (settings.shard_count, settings.shard_ids) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SHARD_COUNT": "0"}, "SHARD_COUNT must be a whole number of shards, at least 1"),
        ({"SHARD_COUNT": "two"}, "SHARD_COUNT must be"),
        ({"SHARD_COUNT": "2", "SHARD_IDS": "1,2"}, "SHARD_IDS has shard 2, but with SHARD_COUNT=2 shards are 0 to 1"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "3-1"}, "SHARD_IDS must be shard numbers and ranges"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0,x"}, "SHARD_IDS must be shard numbers and ranges"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "-1"}, "SHARD_IDS must be shard numbers and ranges"),
        ({"SHARD_COUNT": "4", "SHARD_IDS": "0-99999999999999"}, "SHARD_IDS must be shard numbers and ranges"),
        ({"SHARD_IDS": "0,1"}, "SHARD_IDS needs SHARD_COUNT"),
    ],
)
def test_bad_shard_settings_are_refused_and_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    assert len(info.value.problems) == 1 and message in info.value.problems[0]


def test_a_realtime_model_with_a_key_selects_the_realtime_engine_its_voices_and_speeds() -> None:
    settings = load_settings({"SPEECH_API_KEY": "sk-abc", "SPEECH_MODEL": "gpt-realtime-2.1-mini"})
    assert settings.uses_realtime_engine and settings.engine_name == "realtime"
    assert settings.speech_voices == (
        "alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"
    )
    assert settings.default_voice == "alloy"
    assert (settings.speed_range.low, settings.speed_range.high) == (0.25, 1.5)
    assert 1.5 in settings.speed_range and 1.6 not in settings.speed_range
    # the /audio/speech models keep their own
    classic = load_settings({"SPEECH_API_KEY": "sk-abc"})
    assert classic.engine_name == "openai" and not classic.uses_realtime_engine
    assert (classic.speed_range.low, classic.speed_range.high) == (0.25, 4.0)


def test_a_realtime_model_without_a_key_still_uses_the_offline_engine() -> None:
    settings = load_settings({"SPEECH_MODEL": "gpt-realtime-2.1-mini"})
    assert settings.engine_name == "local" and not settings.uses_realtime_engine
    assert settings.speech_voices == ("alloy", "echo", "fable", "onyx", "nova", "shimmer")


def test_realtime_voices_must_be_ones_the_realtime_api_offers() -> None:
    env = {"SPEECH_API_KEY": "sk-abc", "SPEECH_MODEL": "gpt-realtime"}
    with pytest.raises(ConfigError) as info:
        load_settings({**env, "SPEECH_VOICES": "marin,fable,onyx"})
    [problem] = info.value.problems
    assert problem.startswith("SPEECH_VOICES") and "fable, onyx" in problem and "marin" in problem
    assert load_settings({**env, "SPEECH_VOICES": "cedar,voice_1234"}).speech_voices == ("cedar", "voice_1234")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("", None), ("none", ()), ("local", ("local",)), (" LOCAL , local ", ("local",))],
)
def test_speech_fallback_is_a_list_of_engines(raw: str, expected: tuple[str, ...] | None) -> None:
    assert load_settings({"SPEECH_FALLBACK": raw}).speech_fallback == expected


@pytest.mark.parametrize("raw", ["cloud", "local,none", "none,none", ","])
def test_a_bad_speech_fallback_is_refused_and_named(raw: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"SPEECH_FALLBACK": raw, "SPEECH_REALTIME_SESSIONS": "0"})
    assert [problem.split()[0] for problem in info.value.problems] == ["SPEECH_FALLBACK", "SPEECH_REALTIME_SESSIONS"]


def test_the_container_image_keeps_its_data_dir_and_metrics_host_with_the_example_env_file() -> None:
    """``docker run --env-file .env`` puts the file's assignments over the image's ENV: the example must not
    move DATA_DIR off the image's volume, nor hide metrics inside the container."""
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    env_block = dockerfile.split("ENV ", 1)[1].split("\n\n", 1)[0]
    image_env = dict(re.findall(r"([A-Z_]+)=(\S+)", env_block))
    example = (ROOT / ".env.example").read_text()
    env_file = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", example, flags=re.MULTILINE))
    settings = load_settings({**image_env, **env_file})
    assert str(settings.data_dir) == "/data" and settings.metrics_host == "0.0.0.0"


def test_speech_probe_and_a_declared_speed_range() -> None:
    assert load_settings({"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": "http://tts.local/v1"}).probes_endpoint
    paid = {"SPEECH_API_KEY": "k", "SPEECH_API_BASE_URL": "https://api.openai.com/v1"}
    assert not load_settings(paid).probes_endpoint  # measuring costs money there
    assert load_settings({**paid, "SPEECH_PROBE": "on"}).probes_endpoint
    assert not load_settings({"SPEECH_API_KEY": "k", "SPEECH_PROBE": "OFF"}).probes_endpoint
    assert not load_settings({}).probes_endpoint  # the offline engine
    settings = load_settings({"SPEECH_SPEED_RANGE": "0.5-2"})
    assert settings.declared_speeds is not None and (settings.declared_speeds.low, settings.declared_speeds.high) == (
        0.5, 2.0)
    with pytest.raises(ConfigError) as info:
        load_settings({"SPEECH_PROBE": "sometimes", "SPEECH_SPEED_RANGE": "2-0.5"})
    assert [p.split()[0] for p in info.value.problems] == ["SPEECH_PROBE", "SPEECH_SPEED_RANGE"]


def test_owner_ids_are_user_ids_and_a_bad_one_is_named() -> None:
    assert load_settings({"OWNER_IDS": "123456789012345678, 223456789012345678"}).owner_ids == (
        123456789012345678, 223456789012345678)
    assert load_settings({}).owner_ids == ()
    with pytest.raises(ConfigError) as raised:
        load_settings({"OWNER_IDS": "123, alice"})
    assert any("OWNER_IDS" in problem and "'alice'" in problem for problem in raised.value.problems)


def test_local_voices_name_a_model_per_language(tmp_path: Path) -> None:
    raw = f" ja = {tmp_path}/ja.onnx , de={tmp_path}/de.onnx"
    assert load_settings({"LOCAL_VOICES": raw}).local_voices == (("ja", tmp_path / "ja.onnx"),
                                                                 ("de", tmp_path / "de.onnx"))
    assert load_settings({}).local_voices == ()


@pytest.mark.parametrize(("raw", "problem"), [
    ("ja", "LOCAL_VOICES entries are language=/path/to/model.onnx, not 'ja'."),
    ("it=/v/it.onnx", "LOCAL_VOICES: 'it' is not a language the bot speaks (en, ja, ko, de, fr, es-ES, pt-BR)."),
    ("ja=/v/a.onnx,ja=/v/b.onnx", "LOCAL_VOICES names ja twice."),
    ("de=/v/de.onnx.json", "LOCAL_VOICES: the de voice must be a piper .onnx model, not '/v/de.onnx.json'."),
])
def test_a_bad_local_voices_entry_is_refused_and_named(raw: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"LOCAL_VOICES": raw})
    assert info.value.problems == [problem]


def test_missing_local_voice_files_are_fix_lines_of_speechbot_check(tmp_path: Path) -> None:
    (tmp_path / "ja.onnx").write_bytes(b"model")
    (tmp_path / "ja.onnx.json").write_text("{}")
    (tmp_path / "ko.onnx").write_bytes(b"model")  # its .onnx.json is missing
    settings = load_settings({"LOCAL_VOICES": f"ja={tmp_path}/ja.onnx,ko={tmp_path}/ko.onnx,de={tmp_path}/de.onnx"})
    findings = check_local_voices(settings)
    assert [(finding.ok, finding.what) for finding in findings] == [
        (False, f"LOCAL_VOICES: the ko voice model needs its config {tmp_path}/ko.onnx.json beside it"),
        (False, f"LOCAL_VOICES: the de voice model {tmp_path}/de.onnx does not exist"),
    ]
    fine = load_settings({"LOCAL_VOICES": f"ja={tmp_path}/ja.onnx"})
    assert [(finding.ok, finding.what) for finding in check_local_voices(fine)] == [
        (True, "offline voices per language: ja")]
    assert check_local_voices(load_settings({})) == []
