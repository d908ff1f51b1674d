"""Send ready Opus packets on a voice connection: discord.py's ``send_audio_packet``, minus its per-packet setup.

With 100 guilds playing, the shared sender sends 5,000 packets a second. For every one of them discord.py's
path copies the key out of a list, builds a new cipher box, packs the RTP header field by field, looks up the
encryption method by name, checks and formats its arguments and wraps the ciphertext in a result object: more
of the sender's CPU than the encryption itself. :class:`RtpWriter` does that setup once per connection and
calls libsodium's ``crypto_aead_xchacha20poly1305_ietf_encrypt`` through the cffi module PyNaCl ships (its
public binding, which does the same call after checks that cannot fail here, is the fallback).

Nothing else changes: the datagrams are byte-identical to discord.py's (``tests/unit/voice/test_rtp.py`` compares
them), the client's ``sequence``, ``timestamp`` and nonce counters advance exactly as discord.py advances them
(so its own player can take the connection over at any time), DAVE frames are still encrypted by discord.py's
DAVE session first, and a connection that negotiated any other transport mode goes through discord.py.

One thing discord.py does differently on purpose: while the call is end-to-end encrypted (DAVE) and the bot's
keys are not ready, discord.py sends audio in the clear, which every listener drops. :meth:`RtpWriter.send`
refuses instead (:class:`E2EENotReady`, nothing sent, no counter moved), and the sender holds the packet until
it can go out encrypted; silence frames always go out (DAVE passes them unencrypted).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import discord
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt

from bot.audio.opus import SILENCE_FRAME
from bot.discord_internals import take_nonce, voice_connection

#: The AEAD transport mode discord.py 2.7 negotiates with Discord (its xsalsa20 modes are deprecated by Discord);
#: the only one this writer shortcuts.
FAST_MODE = "aead_xchacha20_poly1305_rtpsize"

_HEADER = struct.Struct(">BBHII")  # version 2, payload type 0x78 (Opus), sequence, timestamp, ssrc
_NONCE_PADDING = bytes(20)  # the 24-byte nonce is the 32-bit counter and zeros; the counter is also appended
_SAMPLES_PER_FRAME = discord.opus.Encoder.SAMPLES_PER_FRAME
_TAG_BYTES = 16  # Poly1305

Seal = Callable[[bytes, bytes, bytes, bytes], bytes]  # (message, header as associated data, nonce, key)


class E2EENotReady(Exception):
    """The call is end-to-end encrypted and the bot's keys are not ready: the packet was not sent."""


def _libsodium_seal() -> Seal | None:
    """``crypto_aead_xchacha20poly1305_ietf_encrypt`` called straight through cffi, or None if it is not there."""
    try:
        from nacl._sodium import ffi, lib

        encrypt = lib.crypto_aead_xchacha20poly1305_ietf_encrypt
    except (ImportError, AttributeError):  # another PyNaCl layout: the public binding does the same
        return None
    null = ffi.NULL
    buffer = ffi.buffer

    def seal(message: bytes, header: bytes, nonce: bytes, key: bytes) -> bytes:
        out = ffi.new("unsigned char[]", len(message) + _TAG_BYTES)
        if encrypt(out, null, message, len(message), header, len(header), null, nonce, key) != 0:
            raise RuntimeError("libsodium could not encrypt a voice packet")
        sealed: bytes = buffer(out)[:]
        return sealed

    return seal


SEAL: Seal = _libsodium_seal() or crypto_aead_xchacha20poly1305_ietf_encrypt


class RtpWriter:
    """Encrypts and sends one connection's packets; call :meth:`send` from one thread at a time."""

    __slots__ = ("_client", "_key", "_key_source")

    def __init__(self, client: discord.VoiceClient) -> None:
        self._client = client
        self._key_source: object = None  # the list discord.py holds; a new one arrives with each session
        self._key = b""

    def send(self, opus: bytes) -> None:
        """Send one 20 ms Opus packet and advance the RTP clock, as ``send_audio_packet(opus, encode=False)``.

        Raises :class:`E2EENotReady` (nothing sent) when DAVE is on and the packet cannot be encrypted yet.
        """
        client = self._client
        connection = voice_connection(client)
        dave = connection.dave_protocol_version != 0 and opus != SILENCE_FRAME
        if dave:
            ready = getattr(connection, "e2ee_ready", None)  # SessionConnectionState's; else discord.py's own
            if not (connection.can_encrypt if ready is None else ready):
                raise E2EENotReady
        if connection.mode != FAST_MODE:
            try:
                client.send_audio_packet(opus, encode=False)
            except Exception as exc:  # davey's NotReady: re-initialised between discord.py's check and its use
                if dave:
                    raise E2EENotReady from exc
                raise
            return
        if dave:
            session = connection.dave_session
            try:
                opus = bytes(session.encrypt_opus(opus))
            except Exception as exc:  # davey's NotReady: the session was re-initialised since the check above
                raise E2EENotReady from exc
        if connection.secret_key is not self._key_source:
            self._key_source = connection.secret_key
            self._key = bytes(connection.secret_key)
        # discord.py's checked_add: past the limit a counter restarts at 0
        sequence = client.sequence + 1
        client.sequence = sequence = sequence if sequence <= 0xFFFF else 0
        header = _HEADER.pack(0x80, 0x78, sequence, client.timestamp, connection.ssrc)
        nonce = take_nonce(client).to_bytes(4, "big")
        sealed = SEAL(opus, header, nonce + _NONCE_PADDING, self._key)
        try:
            connection.send_packet(header + sealed + nonce)
        except OSError:
            pass  # as in discord.py: a packet the socket refused is dropped, the clock goes on
        timestamp = client.timestamp + _SAMPLES_PER_FRAME
        client.timestamp = timestamp if timestamp <= 0xFFFFFFFF else 0
