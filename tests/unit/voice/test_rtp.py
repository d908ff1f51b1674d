"""RtpWriter puts exactly the datagrams on the wire that discord.py's ``send_audio_packet`` would.

Each case runs the same packets through two voice clients in the same state, one with discord.py's own
``send_audio_packet`` and one with :class:`RtpWriter`, and compares the datagrams and the counters after.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import discord
import nacl.bindings
import pytest

from bot.voice import rtp
from bot.voice.rtp import FAST_MODE, RtpWriter

PACKETS = [bytes([0xFC]) + os.urandom(n) for n in (3, 60, 120, 200)]


class _VoiceClient(discord.VoiceClient):
    """A ``discord.VoiceClient`` with its connection state replaced by one that records datagrams."""

    def __new__(cls, **state: object) -> _VoiceClient:
        client = discord.VoiceClient.__new__(cls)
        client.sequence, client.timestamp, client._incr_nonce = 0, 0, 0
        client.datagrams = []
        connection = {"mode": FAST_MODE, "ssrc": 0x01020304, "secret_key": list(range(32)), "dave_session": None,
                      "dave_protocol_version": 0, "can_encrypt": False, "send_packet": client.datagrams.append,
                      **state}
        client._connection = SimpleNamespace(**connection)
        return client

    def __init__(self, **state: object) -> None:
        pass


def both(**state: object) -> tuple[_VoiceClient, _VoiceClient]:
    return _VoiceClient(**state), _VoiceClient(**state)


def counters(client: _VoiceClient) -> tuple[int, int, int]:
    return client.sequence, client.timestamp, client._incr_nonce


def opened(datagram: bytes, key: bytes = bytes(range(32))) -> bytes:
    """What a receiver decrypts: the header is the associated data, the appended 4 bytes start the nonce."""
    header, sealed, nonce = datagram[:12], datagram[12:-4], datagram[-4:]
    return nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, header, nonce + bytes(20), key)


def send_both(theirs: _VoiceClient, ours: _VoiceClient, packets: list[bytes]) -> None:
    writer = RtpWriter(ours)
    for packet in packets:
        theirs.send_audio_packet(packet, encode=False)
        writer.send(packet)


def test_datagrams_and_counters_match_discord_py() -> None:
    theirs, ours = both()
    send_both(theirs, ours, PACKETS)
    assert ours.datagrams == theirs.datagrams
    assert counters(ours) == counters(theirs) == (4, 4 * 960, 4)
    assert opened(ours.datagrams[2]) == PACKETS[2]


def test_counters_restart_at_zero_where_discord_py_restarts_them() -> None:
    theirs, ours = both()
    for client in (theirs, ours):
        client.sequence, client.timestamp, client._incr_nonce = 65_534, 2**32 - 961, 2**32 - 2
    send_both(theirs, ours, PACKETS)
    assert ours.datagrams == theirs.datagrams
    assert counters(ours) == counters(theirs)


def test_a_new_session_key_is_used_from_the_next_packet() -> None:
    theirs, ours = both()
    writer = RtpWriter(ours)
    for packet in PACKETS[:2]:
        theirs.send_audio_packet(packet, encode=False)
        writer.send(packet)
    for client in (theirs, ours):  # a voice reconnect: SESSION_DESCRIPTION brings a new key list
        client._connection.secret_key = list(range(100, 132))
    for packet in PACKETS[2:]:
        theirs.send_audio_packet(packet, encode=False)
        writer.send(packet)
    assert ours.datagrams == theirs.datagrams


def test_dave_frames_are_encrypted_by_the_dave_session_first() -> None:
    class DaveSession:
        def encrypt_opus(self, frame: bytes) -> bytes:
            return b"DAVE" + frame[::-1]

    theirs, ours = both(dave_session=DaveSession(), dave_protocol_version=1, can_encrypt=True)
    send_both(theirs, ours, PACKETS)
    assert ours.datagrams == theirs.datagrams
    assert opened(ours.datagrams[0]) == b"DAVE" + PACKETS[0][::-1]


@pytest.mark.parametrize("mode", [FAST_MODE, "xsalsa20_poly1305_lite"])
def test_while_dave_keys_are_not_ready_nothing_goes_out_in_the_clear(mode: str) -> None:
    class DaveSession:
        def encrypt_opus(self, frame: bytes) -> bytes:
            raise AssertionError("not ready: must not be called")

    theirs, ours = both(mode=mode, dave_session=DaveSession(), dave_protocol_version=1, can_encrypt=False)
    theirs.send_audio_packet(PACKETS[1], encode=False)
    assert len(theirs.datagrams) == 1  # discord.py sends it in the clear: every listener would drop it
    with pytest.raises(rtp.E2EENotReady):
        RtpWriter(ours).send(PACKETS[1])
    assert ours.datagrams == [] and counters(ours) == (0, 0, 0)
    RtpWriter(ours).send(rtp.SILENCE_FRAME)  # silence passes DAVE unencrypted, so it may go out
    assert len(ours.datagrams) == 1


def test_davey_refusing_between_check_and_use_is_not_ready_not_an_error() -> None:
    class DaveSession:
        def encrypt_opus(self, frame: bytes) -> bytes:
            raise RuntimeError("NotReady")  # re-initialised on the event loop since the check

    _, ours = both(dave_session=DaveSession(), dave_protocol_version=1, can_encrypt=True)
    with pytest.raises(rtp.E2EENotReady):
        RtpWriter(ours).send(PACKETS[0])
    assert ours.datagrams == [] and counters(ours) == (0, 0, 0)


@pytest.mark.parametrize("mode", ["xsalsa20_poly1305_lite", "xsalsa20_poly1305_suffix"])
def test_other_transport_modes_go_through_discord_py(mode: str) -> None:
    theirs, ours = both(mode=mode)
    send_both(theirs, ours, PACKETS)
    assert len(ours.datagrams) == len(PACKETS)
    assert [d[:12] for d in ours.datagrams] == [d[:12] for d in theirs.datagrams]  # random nonces: headers only
    assert counters(ours) == counters(theirs)


def test_a_refused_datagram_is_dropped_and_the_clock_goes_on() -> None:
    def refuse(datagram: bytes) -> None:
        raise BlockingIOError("socket buffer full")

    theirs, ours = both(send_packet=refuse)
    send_both(theirs, ours, PACKETS)
    assert counters(ours) == counters(theirs) == (4, 4 * 960, 4)


def test_the_direct_libsodium_call_seals_as_pynacl_does() -> None:
    seal = rtp._libsodium_seal()
    assert seal is not None, "PyNaCl's cffi module is where RtpWriter expects it"
    assert rtp.SEAL is not nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt
    key, nonce, header = bytes(range(32)), bytes(range(24)), bytes(12)
    for message in (b"", b"\xf8\xff\xfe", os.urandom(1275), os.urandom(5000)):
        assert seal(message, header, nonce, key) == nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(
            message, header, nonce, key
        )
