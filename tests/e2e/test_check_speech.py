"""``speechbot check`` synthesizes (issue 13 item 6): each way a speech endpoint can be misconfigured is named,
with the setting to change, against the loopback double's server quirks; and ``check`` writes nothing."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli_speech import run_cli
from tests.loopback.discord import DiscordEmulator
from tests.loopback.speech_fixtures import SPEECH_TEST_KEY
from tests.loopback.speech_server import Fault, ServerQuirks, SpeechEndpoint


async def check(emu: DiscordEmulator, tmp_path: Path, base_url: str, **env: str) -> tuple[int, str]:
    """``speechbot check`` against ``base_url``. SPEECH_TIMEOUT is generous: the double synthesizes every speed
    the check measures, which takes seconds on a busy machine, and no test here waits for a timeout."""
    settings = {**emu.env(), "SPEECH_API_BASE_URL": base_url, "SPEECH_BACKEND": "openai", "SPEECH_TIMEOUT": "30",
                "SPEECH_FALLBACK": "none", **env}
    code, out, err = await run_cli("check", env=settings, cwd=tmp_path)
    assert "Traceback" not in err, err
    assert list(tmp_path.iterdir()) == [], "check wrote something"
    return code, out.decode()


async def test_a_base_url_without_v1_is_named(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    async with SpeechEndpoint() as endpoint:
        root = endpoint.base_url.removesuffix("/v1")
        code, text = await check(discord_emulator, tmp_path, root)
    assert code == 1
    assert f"speech: {root}/audio/speech answered HTTP 404: not a speech endpoint" in text
    assert f"SPEECH_API_BASE_URL probably lacks its path (e.g. SPEECH_API_BASE_URL={root}/v1)" in text


async def test_an_html_page_is_not_a_speech_endpoint(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    async with SpeechEndpoint() as endpoint:
        endpoint.inject(Fault(not_audio=True))
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url)
    assert code == 1 and "answered a page that is not audio" in text and "SPEECH_API_BASE_URL" in text


async def test_a_wav_only_server_names_the_default_format_and_voice_gets_wav(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.wav_only()) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url)
        assert code == 1
        assert "speech: the service cannot make opus audio" in text and "Set SPEECH_DEFAULT_FORMAT" in text
        assert "needs the ffmpeg binary" in text  # the server's own reason

        code, text = await check(discord_emulator, tmp_path, endpoint.base_url, SPEECH_DEFAULT_FORMAT="wav")
    assert code == 0, text
    assert "voice and read-aloud get wav (the service cannot make opus; the bot transcodes for voice)" in text


async def test_an_unknown_default_voice_is_named(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(voices=frozenset({"nova"}))) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url)
    assert code == 1
    assert "speech: the service does not know the voice alloy" in text
    assert "Check SPEECH_DEFAULT_VOICE and SPEECH_VOICES." in text and "Voice 'alloy' not found" in text


async def test_a_strict_server_is_told_to_get_no_instructions(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks.strict()) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url)
    assert code == 0, text
    assert "[!! ] speech: the service does not accept instructions (voice styles)" in text


async def test_a_keyless_bot_is_told_to_set_a_key_not_that_it_was_rejected(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    async with SpeechEndpoint(api_key=SPEECH_TEST_KEY) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url)
    assert code == 1
    assert "speech: the service wants an API key (401)" in text and "Set SPEECH_API_KEY." in text
    assert "rejected" not in text


async def test_check_shows_the_voice_list_and_what_the_server_honours(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    """Issue 13 item 1: voices from the server's list, speeds refused outside 0.5-2 (loudness-tts), and every voice
    the same (a Piper server with one model), each measured and named with what to change."""
    quirks = ServerQuirks(voice_list={"object": "list", "data": [{"id": "en_joe"}, {"id": "en_amy"}]},
                          refused_speeds=(0.5, 2.0))
    async with SpeechEndpoint(quirks=quirks) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url, SPEECH_DEFAULT_FORMAT="wav")
        assert {r.json["voice"] for r in endpoint.requests if r.method == "POST"} == {"alloy", "en_joe"}
    assert code == 0, text
    assert "speech: 3 voices offered, from the server's list (default alloy)" in text  # OpenAI's name stays
    assert "[!! ] speech: the service honours speeds from 0.5 to 2 only (measured), not 0.25 to 4" in text
    assert "SPEECH_SPEED_RANGE=0.5-2 declares it" in text
    assert "[!! ] speech: every voice of the service sounds the same (measured)" in text


async def test_check_of_a_server_that_honours_speed_and_voice(
    discord_emulator: DiscordEmulator, tmp_path: Path
) -> None:
    async with SpeechEndpoint(quirks=ServerQuirks(distinct_voices=True)) as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url, SPEECH_VOICES="nova,echo")
    assert code == 0, text
    assert "speech: 2 voices offered, from SPEECH_VOICES (default nova)" in text
    assert "speech: the service honours speeds from 0.25 to 4 (measured)" in text
    assert "speech: its voices sound different (measured)" in text
    assert "sounds the same" not in text and "ignores speed" not in text


async def test_a_declared_speed_range_is_not_measured(discord_emulator: DiscordEmulator, tmp_path: Path) -> None:
    async with SpeechEndpoint() as endpoint:
        code, text = await check(discord_emulator, tmp_path, endpoint.base_url, SPEECH_VOICES="nova",
                                 SPEECH_SPEED_RANGE="0.5-2")
        assert all(r.json.get("speed", 1.0) == 1.0 for r in endpoint.requests if r.method == "POST")
    assert code == 0, text
    assert "speech: the service honours speeds from 0.5 to 2 only (declared), not 0.25 to 4" in text
