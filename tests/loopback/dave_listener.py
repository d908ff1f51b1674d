"""A simulated human in a voice call: a real DAVE group member that hears what the bot sends.

The human's client is Discord's own DAVE implementation, libdave (PyPI ``dave.py``), run the way Discord's
reference session manager runs it (libdave's ``samples/typescript/DaveSessionManager.ts``): a new key package
on connect and on every new group (op 24 epoch 1), proposals processed against the users the gateway said are in
the call (op 11/13), a commit or welcome that fails answered with op 31 and a fresh key package, receiving keys
for each other member prepared as soon as a commit or welcome is processed (libdave keeps the previous epoch's
keys for ten seconds, so in-flight media still decrypts). It never sends media.

libdave is independent of davey (the bot's DAVE library), so the gateway's messages and the bot's frames are
checked by a second implementation. :meth:`hear` is what a human's client does with each media frame after
transport decryption: DAVE-decrypt it with the sender's key ratchet. Silence frames pass; a frame sent in the
clear while DAVE is on is dropped (the whitepaper's protocol frame check), as is one under a key this member
does not hold.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import dave

from tests.loopback import dave_call as ops

if TYPE_CHECKING:
    from tests.loopback.dave_call import DaveCall

log = logging.getLogger(__name__)
#: libdave logs every frame it cannot decrypt, at ERROR; a listener counts them itself (:class:`Heard`).
logging.getLogger("dave").setLevel(logging.CRITICAL)

OPUS_SILENCE = b"\xf8\xff\xfe"
MAGIC_MARKER = b"\xfa\xfa"
#: What the gateway sends a human's client reaches it after this delay, and its replies take as long back: a
#: client across the internet (the bot's own link is loopback-fast), so a group takes real round trips to form.
REPLY_LATENCY = 0.03


@dataclass
class Heard:
    """What one listener made of the frames one sender sent."""

    decrypted: list[tuple[float, bytes]] = field(default_factory=list)  # (arrival, Opus frame) heard
    plaintext: int = 0  # non-silence frames sent in the clear while DAVE was on: dropped
    undecryptable_before_joining: int = 0  # DAVE frames that came before this member was in the group
    undecryptable: int = 0  # DAVE frames this member, in the group, could not decrypt (lost)


class Listener:
    """A human's voice client in one call, as a DAVE member (a :class:`~tests.loopback.dave_call.Member`)."""

    def __init__(self, user_id: int, call: DaveCall, *, latency: float = REPLY_LATENCY) -> None:
        self.user_id = user_id
        self.call = call
        self.latency = latency
        self.recognized: set[str] = set()
        self.session = dave.Session(self._mls_failure)
        self.decryptors: dict[int, dave.Decryptor] = {}
        self.pending_transitions: dict[int, int] = {}
        # When the transition that brought it into the group executed: from then on, senders use keys it holds
        # (before, they rightly still send under the previous epoch, which a newcomer cannot decrypt).
        self.in_group_since: float | None = None
        self._joining: int | None = None  # the transition that is bringing it in
        self.heard: dict[int, Heard] = {}  # sender user id → what it heard
        self.mls_failures: list[str] = []
        self.invalid_sent = 0  # op 31s it sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._inbox: asyncio.Queue[tuple[float, bool, int, object]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.connected = False

    # -- lifecycle --------------------------------------------------------------------------------------

    async def join(self) -> None:
        """Connect to the call's voice gateway (the handshake is over: SESSION_DESCRIPTION said DAVE v1)."""
        self.connected = True
        self._reader = asyncio.get_running_loop().create_task(self._read_inbox(), name=f"listener-{self.user_id}")
        self.session.init(self.call.protocol_version or ops.DAVE_VERSION, self.call.channel_id, str(self.user_id),
                          None)
        await self.call.connect(self)
        if self.call.protocol_version:
            self._send_key_package()

    async def leave(self) -> None:
        self.connected = False
        await self.call.disconnect(self)
        for task in [*self._tasks, self._reader]:
            if task is not None:
                task.cancel()

    async def _read_inbox(self) -> None:
        """Handle what the gateway sent, in order, each after the network delay."""
        loop = asyncio.get_running_loop()
        while True:
            due, binary, op, payload = await self._inbox.get()
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                if binary:
                    self._on_binary(op, payload)  # type: ignore[arg-type]
                else:
                    self._on_json(op, payload)  # type: ignore[arg-type]
            except Exception as exc:  # a bug in this double, not in the bot: make it visible
                self.call.failures.append(f"listener {self.user_id}: op {op} raised {exc!r}")

    # -- gateway → client (the Member interface) ---------------------------------------------------------

    async def send_json(self, op: int, d: object) -> None:
        self._inbox.put_nowait((asyncio.get_running_loop().time() + self.latency, False, op, d))

    async def send_binary(self, op: int, payload: bytes) -> None:
        self._inbox.put_nowait((asyncio.get_running_loop().time() + self.latency, True, op, payload))

    def _on_json(self, op: int, d: dict[str, object]) -> None:
        if op == ops.CLIENTS_CONNECT:
            user_ids = [str(u) for u in d["user_ids"]]  # type: ignore[attr-defined]
            self.recognized.update(user_ids)
            for user_id in user_ids:
                self._prepare_decryptor(int(user_id))
        elif op == ops.CLIENT_DISCONNECT:
            self.recognized.discard(str(d["user_id"]))
            self.decryptors.pop(int(d["user_id"]), None)  # type: ignore[call-overload]
        elif op == ops.PREPARE_EPOCH:
            if d["epoch"] == 1:  # a new group: start over with a new key package
                self.in_group_since = self._joining = None
                self.session.init(int(d["protocol_version"]), self.call.channel_id,  # type: ignore[call-overload]
                                  str(self.user_id), None)
                self._send_key_package()
        elif op == ops.PREPARE_TRANSITION:
            transition_id, version = int(d["transition_id"]), int(d["protocol_version"])  # type: ignore[call-overload]
            self.pending_transitions[transition_id] = version
            if version == 0:
                for decryptor in self.decryptors.values():
                    decryptor.transition_to_passthrough_mode(True, 120)
            if transition_id != ops.INIT_TRANSITION:
                self._reply_json(ops.TRANSITION_READY, {"transition_id": transition_id})
        elif op == ops.EXECUTE_TRANSITION:
            transition_id = int(d["transition_id"])  # type: ignore[call-overload]
            self.pending_transitions.pop(transition_id, None)
            if self._joining == transition_id:
                self._joining = None
                self.in_group_since = time.monotonic()

    def _on_binary(self, op: int, payload: bytes) -> None:
        if op == ops.EXTERNAL_SENDER:
            self.session.set_external_sender(payload)
        elif op == ops.PROPOSALS:
            commit = self.session.process_proposals(payload, self.recognized | {str(self.user_id)})
            if commit:
                self._reply_binary(ops.COMMIT_WELCOME, bytes(commit))
        elif op == ops.ANNOUNCE_COMMIT:
            transition_id = int.from_bytes(payload[:2], "big")
            result = self.session.process_commit(payload[2:])
            if isinstance(result, dave.RejectType):
                if result == dave.RejectType.failed:
                    self._flag_invalid(transition_id)
                return
            if self.in_group_since is None:
                self._joining = transition_id
            self._joined(transition_id)
        elif op == ops.WELCOME:
            transition_id = int.from_bytes(payload[:2], "big")
            roster = self.session.process_welcome(payload[2:], self.recognized | {str(self.user_id)})
            if roster is None:
                self._flag_invalid(transition_id)
                return
            self._joining = transition_id
            self._joined(transition_id)

    def _joined(self, transition_id: int) -> None:
        for user_id in list(self.recognized):
            self._prepare_decryptor(int(user_id))
        if transition_id != ops.INIT_TRANSITION:
            self.pending_transitions[transition_id] = ops.DAVE_VERSION
            self._reply_json(ops.TRANSITION_READY, {"transition_id": transition_id})

    def _prepare_decryptor(self, user_id: int) -> None:
        if user_id == self.user_id:
            return
        ratchet = self.session.get_key_ratchet(str(user_id))
        if ratchet is None:
            return
        self.decryptors.setdefault(user_id, dave.Decryptor()).transition_to_key_ratchet(ratchet)

    def _flag_invalid(self, transition_id: int) -> None:
        self.invalid_sent += 1
        self.in_group_since = self._joining = None
        self._reply_json(ops.INVALID_COMMIT_WELCOME, {"transition_id": transition_id})
        self.session.init(self.call.protocol_version or ops.DAVE_VERSION, self.call.channel_id,
                          str(self.user_id), None)
        self._send_key_package()

    def _send_key_package(self) -> None:
        package = self.session.get_marshalled_key_package()
        if package:
            self._reply_binary(ops.KEY_PACKAGE, bytes(package))

    # -- client → gateway, after a network delay ---------------------------------------------------------

    def _reply_json(self, op: int, d: dict[str, object]) -> None:
        self._later(lambda: self.call.on_json(self, op, d))

    def _reply_binary(self, op: int, payload: bytes) -> None:
        self._later(lambda: self.call.on_binary(self, op, payload))

    def _later(self, send: Callable[[], Awaitable[None]]) -> None:
        async def run() -> None:
            await asyncio.sleep(self.latency)
            if self.connected:
                await send()

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _mls_failure(self, source: str, reason: str) -> None:
        self.mls_failures.append(f"{source}: {reason}")

    # -- media ------------------------------------------------------------------------------------------

    def hear(self, sender_id: int, frame: bytes, arrival: float) -> bytes | None:
        """What this human's client plays of ``frame`` (an RTP payload, transport-decrypted): the Opus frame,
        or None when it has to drop it."""
        heard = self.heard.setdefault(sender_id, Heard())
        if frame == OPUS_SILENCE:
            return frame
        if not frame.endswith(MAGIC_MARKER):
            heard.plaintext += 1
            return None
        decryptor = self.decryptors.get(sender_id)
        opus = decryptor.decrypt(dave.MediaType.audio, frame) if decryptor is not None else None
        if not opus:  # None, or (in some libdave failure paths) an empty frame
            if self.in_group_since is None:
                heard.undecryptable_before_joining += 1
            else:
                heard.undecryptable += 1
            return None
        heard.decrypted.append((arrival, bytes(opus)))
        return bytes(opus)


def stranger_key_package(channel_id: int, user_id: int) -> bytes:
    """A valid key package of a user who is not in the call (for proposals every member must refuse)."""
    session = dave.Session(None)
    session.init(ops.DAVE_VERSION, channel_id, str(user_id), None)
    package = session.get_marshalled_key_package()
    assert package is not None
    return bytes(package)
