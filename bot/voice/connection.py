"""The bot's voice connection: discord.py 2.7.1's, with its join races and its DAVE gaps closed.

Everything here subclasses discord.py's voice connection state and voice websocket, whose internals are not a
public API; every one it overrides or reads is listed in ``bot.discord_internals.SEAMS`` and checked against the
pinned discord.py by ``tests/unit/test_discord_internals.py``.

**DAVE.** Since 2026-03 Discord end-to-end encrypts every non-stage call (DAVE: an MLS group of the call's
clients, the voice gateway as its external sender; ``docs`` and the DAVE whitepaper). discord.py 2.7.1 + davey
do the cryptography, but:

* audio sent before the group is ready goes out in the clear and every listener drops it, so the first words
  after a join (or after the last listener left and one came back) were lost. :attr:`SessionConnectionState.e2ee_ready`
  says when audio may go out; the shared sender (``bot.voice.sender``) holds an item's packets until it is;
* a proposal davey refuses (a foreign signature, a stale epoch) raised out of discord.py's handler and silently
  ended the voice websocket's reader: nothing more was read, later listeners never got keys. Here every DAVE
  message is handled behind a guard that logs one line and recovers the way the protocol says (a refused
  proposal is ignored, as libdave ignores it; a commit or welcome that cannot be processed is reported with
  op 31 and the session starts over with a new key package; a refused external sender reconnects voice);
* davey switches to the new epoch's sending key when it *processes* a commit, not when the transition
  executes, so listeners that had not processed the commit yet lost frames on every join and leave. A member
  that already has keys therefore processes a commit when the gateway executes its transition (op 22), after
  answering op 23 at once: the bot never decrypts (it is deafened; discord.py 2.7 cannot receive), so the only
  effect of the later processing is that its key switches exactly when every member has the new keys. A commit
  that turns out not to process is then reported with op 31 like any other;
* expected members (ops 11 and 13) are passed to davey, which refuses Add proposals for anyone else, once the
  voice server has said who is in the call.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

import discord
from discord.gateway import DiscordVoiceWebSocket
from discord.voice_state import ConnectionFlowState, VoiceConnectionState

log = logging.getLogger(__name__)

#: How long audio may wait for end-to-end encryption to be ready before the item is given up (and voice is
#: reconnected if other people are in the call). A join takes a few round trips; Discord's transition timeout is
#: about two seconds.
E2EE_READY_TIMEOUT = 10.0
#: A commit held for its transition is processed anyway if the transition has not executed after this long.
DEFERRED_COMMIT_TIMEOUT = 5.0
#: Hold a commit until its transition executes (module docstring). Off only to measure what it saves
#: (``bench/bench_voice.py``).
HOLD_KEY_SWITCH = True

CLIENTS_CONNECT, CLIENT_DISCONNECT = 11, 13
PREPARE_EPOCH, EXECUTE_TRANSITION = 24, 22
EXTERNAL_SENDER, PROPOSALS, ANNOUNCE_COMMIT, WELCOME = 25, 27, 29, 30
#: Close code the bot uses to make discord.py reconnect voice from scratch (any code discord.py does not treat
#: as final leads to its full reconnect).
RECONNECT_CLOSE_CODE = 4000


class SessionConnectionState(VoiceConnectionState):
    """discord.py's voice connection flow with two join races closed and DAVE made safe (module docstring).

    Races, found by tests/e2e/test_voice_scale.py under CPU load (a hundred joins at once, a loaded machine):

    * A join is marked as under way only once its op 4 has been sent, so Discord's answer could be handled
      first, find the connection "disconnected" and be ignored: it is marked before sending instead.
    * Waiting for a state change starts a separate task that waits on an event which the state setter sets
      and clears at once; a change made before that task runs is missed, and the join times out although both
      voice updates arrived. Here the wait is registered in the waiting task itself, before it yields.
    """

    #: A reconnect after the connection had been up (discord.py's answer to a voice server crash, close code
    #: 4015, or a dropped connection) timed out: the session ended for want of a voice server, nobody sent
    #: the bot away. A moderator's disconnect or a deleted channel never reconnects, so never sets it.
    reconnect_failed = False

    def __init__(self, voice_client: discord.VoiceClient, **kwargs: Any) -> None:
        super().__init__(voice_client, **kwargs)
        #: Audio may go out: no DAVE on this call, or the group is ready and the transition that made it ready
        #: has executed. Read by the sender thread; written on the event loop only.
        self.e2ee_ready = True
        self.expected_user_ids: set[int] | None = None  # who the voice server says is in the call (ops 11/13)
        self.others_in_call = 0
        self._awaiting_execute: int | None = None  # the transition that will make the bot's keys current
        self._deferred_commit: tuple[int, bytes] | None = None  # (transition id, commit) held until op 22
        self._deferred_timer: asyncio.TimerHandle | None = None
        self._held_proposals: list[tuple[int, bytes]] = []  # op 27s that arrived behind a held commit
        self._reconnect_requested_at = 0.0

    # -- discord.py's flow ------------------------------------------------------------------------------

    async def _connect(self, reconnect: bool, timeout: float, self_deaf: bool, self_mute: bool, resume: bool) -> None:
        was_up = self._runner is not None  # the websocket poller starts with the first successful connection
        try:
            await super()._connect(reconnect, timeout, self_deaf, self_mute, resume)
        except TimeoutError:
            self.reconnect_failed = was_up
            raise
        self.reconnect_failed = False

    async def _voice_connect(self, *, self_deaf: bool = False, self_mute: bool = False) -> None:
        if self.state is ConnectionFlowState.disconnected:
            self.state = ConnectionFlowState.set_guild_voice_state
        await super()._voice_connect(self_deaf=self_deaf, self_mute=self_mute)

    async def _wait_for_state(
        self, state: ConnectionFlowState, *other_states: ConnectionFlowState, timeout: float | None = None
    ) -> None:
        states = (state, *other_states)
        async with asyncio.timeout(timeout):
            while self.state not in states:
                await self._state_event.wait()

    async def _connect_websocket(self, resume: bool) -> DiscordVoiceWebSocket:
        """discord.py's, with :class:`DaveSafeVoiceWebSocket` instead of its own websocket class."""
        seq_ack = -1
        if self.ws is not discord.utils.MISSING:
            seq_ack = self.ws.seq_ack
        if not resume:  # a new voice session: a new call membership and a new DAVE session
            self._forget_call()
        ws = await DaveSafeVoiceWebSocket.from_connection_state(self, resume=resume, hook=self.hook, seq_ack=seq_ack)
        self.state = ConnectionFlowState.websocket_connected
        return ws

    async def reinit_dave_session(self) -> None:
        self._drop_deferred()
        await super().reinit_dave_session()
        self.update_e2ee_ready()

    # -- DAVE state --------------------------------------------------------------------------------------

    def update_e2ee_ready(self) -> None:
        session = self.dave_session
        self.e2ee_ready = self.dave_protocol_version == 0 or (
            session is not None and bool(session.ready) and self._awaiting_execute is None
        )

    def _forget_call(self) -> None:
        self.e2ee_ready = False  # until SESSION_DESCRIPTION says whether this call runs DAVE
        self.expected_user_ids = None
        self.others_in_call = 0
        self._awaiting_execute = None
        self._drop_deferred()

    def _drop_deferred(self) -> None:
        self._deferred_commit = None
        self._held_proposals.clear()
        if self._deferred_timer is not None:
            self._deferred_timer.cancel()
            self._deferred_timer = None

    def request_reconnect(self, why: str) -> None:
        """Start discord.py's full voice reconnect (a new voice session and DAVE group), at most every 30 s."""
        now = time.monotonic()
        if now - self._reconnect_requested_at < 30 or self.ws is discord.utils.MISSING:
            return
        self._reconnect_requested_at = now
        log.warning("reconnecting voice (guild=%s): %s", self.guild.id, why)
        self.voice_client.loop.create_task(self.ws.close(RECONNECT_CLOSE_CODE), name=f"voice-reconnect-{self.guild.id}")

    def e2ee_timed_out(self) -> None:
        """Called (on the loop) when an item waited :data:`E2EE_READY_TIMEOUT` for end-to-end encryption."""
        if self.others_in_call:
            self.request_reconnect("end-to-end encryption was not ready in time")


class DaveSafeVoiceWebSocket(DiscordVoiceWebSocket):
    """discord.py's voice websocket whose DAVE handling cannot end the reader and keeps the bot audible."""

    _connection: SessionConnectionState

    async def received_message(self, msg: dict[str, Any]) -> None:
        try:
            await self._received_message(msg)
        except ConnectionError as exc:  # an answer to a websocket that is closing: the reader learns it next
            log.debug("voice websocket closing while answering op %s (guild=%s): %s", msg.get("op"),
                      self._connection.guild.id, exc)
        except Exception:  # never let one message end the reader: nothing more would be read, ever
            log.exception("could not handle voice gateway op %s (guild=%s)", msg.get("op"), self._connection.guild.id)

    async def received_binary_message(self, msg: bytes) -> None:
        try:
            await self._received_binary_message(msg)
        except ConnectionError as exc:
            log.debug("voice websocket closing while answering a DAVE message (guild=%s): %s",
                      self._connection.guild.id, exc)
        except Exception:
            log.exception("could not handle a binary voice gateway message (guild=%s)", self._connection.guild.id)

    async def _received_message(self, msg: dict[str, Any]) -> None:
        state = self._connection
        op, data = msg.get("op"), msg.get("d")
        if op == CLIENTS_CONNECT and isinstance(data, dict):
            ids = {int(u) for u in data.get("user_ids", [])}
            state.expected_user_ids = (state.expected_user_ids or set()) | ids
            state.others_in_call = len(state.expected_user_ids - {state.user.id})
        elif op == CLIENT_DISCONNECT and isinstance(data, dict) and state.expected_user_ids is not None:
            state.expected_user_ids.discard(int(data["user_id"]))
            state.others_in_call = len(state.expected_user_ids - {state.user.id})
        elif op == EXECUTE_TRANSITION and isinstance(data, dict):
            await self._apply_deferred_commit(int(data["transition_id"]))
        elif op == PREPARE_EPOCH and isinstance(data, dict) and data.get("epoch") == 1:  # a new group
            state._drop_deferred()
            state._awaiting_execute = None
        await super().received_message(msg)
        if op == EXECUTE_TRANSITION and isinstance(data, dict) and state._awaiting_execute == data["transition_id"]:
            state._awaiting_execute = None
        state.update_e2ee_ready()

    async def _received_binary_message(self, msg: bytes) -> None:
        """discord.py's handling of binary DAVE messages, each behind a guard (see the module docstring)."""
        self.seq_ack = struct.unpack_from(">H", msg, 0)[0]
        state = self._connection
        session = state.dave_session
        if session is None:
            return
        op = msg[2]
        guild_id = state.guild.id
        if op == EXTERNAL_SENDER:
            try:
                session.set_external_sender(msg[3:])
            except Exception as exc:  # noqa: BLE001 - libdave's refusal, whatever its type
                if session.ready:  # already in a group with it: nothing to do
                    log.debug("external sender ignored (guild=%s): %s", guild_id, exc)
                else:
                    state.request_reconnect(f"the voice server's MLS external sender was refused ({exc})")
        elif op == PROPOSALS:
            if state._deferred_commit is not None:  # proposals for the epoch after the held commit
                state._held_proposals.append((msg[3], msg[4:]))
            else:
                await self._process_proposals(msg[3], msg[4:])
        elif op == ANNOUNCE_COMMIT:
            transition_id = struct.unpack_from(">H", msg, 3)[0]
            await self._announce_commit(transition_id, msg[5:])
        elif op == WELCOME:
            transition_id = struct.unpack_from(">H", msg, 3)[0]
            try:
                session.process_welcome(msg[5:])
            except Exception as exc:  # noqa: BLE001 - libdave's refusal: ask to be added again
                log.warning("could not process a DAVE welcome (guild=%s): %s; asking to be added again", guild_id, exc)
                await state._recover_from_invalid_commit(transition_id)
            else:
                self._ready_for(transition_id)
                await self._send_ready(transition_id)
        state.update_e2ee_ready()

    async def _process_proposals(self, operation: int, proposals: bytes) -> None:
        import davey

        state = self._connection
        assert state.dave_session is not None
        expected = None
        if state.expected_user_ids is not None:
            expected = sorted(state.expected_user_ids | {state.user.id})
        kind = davey.ProposalsOperationType.append if operation == 0 else davey.ProposalsOperationType.revoke
        try:
            result = state.dave_session.process_proposals(kind, proposals, expected)
        except Exception as exc:  # noqa: BLE001 - libdave ignores proposals it cannot process, so does the bot
            log.warning("ignored DAVE proposals the bot cannot process (guild=%s): %s", state.guild.id, exc)
            return
        if isinstance(result, davey.CommitWelcome):
            await self.send_binary(
                DiscordVoiceWebSocket.MLS_COMMIT_WELCOME,
                result.commit + result.welcome if result.welcome else result.commit,
            )

    async def _announce_commit(self, transition_id: int, commit: bytes) -> None:
        state = self._connection
        session = state.dave_session
        assert session is not None
        if state._deferred_commit is not None:  # a second commit before the first executed: catch up in order
            await self._apply_deferred_commit(state._deferred_commit[0])
        if HOLD_KEY_SWITCH and session.ready and transition_id != 0:
            # Keys in use: keep sending with them until the transition executes (module docstring).
            state._deferred_commit = (transition_id, commit)
            state._deferred_timer = self.loop.call_later(
                DEFERRED_COMMIT_TIMEOUT, lambda: self.loop.create_task(self._apply_deferred_commit(transition_id)))
            state.dave_pending_transitions[transition_id] = state.dave_protocol_version
            await self._send_ready(transition_id)
            return
        if await self._process_commit(transition_id, commit):
            self._ready_for(transition_id)
            if transition_id != 0:
                await self._send_ready(transition_id)

    async def _apply_deferred_commit(self, transition_id: int) -> None:
        state = self._connection
        if state._deferred_commit is None or state._deferred_commit[0] != transition_id:
            return
        commit = state._deferred_commit[1]
        held = list(state._held_proposals)
        state._drop_deferred()
        if await self._process_commit(transition_id, commit):
            for operation, proposals in held:
                await self._process_proposals(operation, proposals)
        state.update_e2ee_ready()

    async def _process_commit(self, transition_id: int, commit: bytes) -> bool:
        state = self._connection
        assert state.dave_session is not None
        try:
            state.dave_session.process_commit(commit)
        except Exception as exc:  # noqa: BLE001 - libdave's refusal: ask to be added again
            log.warning("could not process a DAVE commit (guild=%s): %s; asking to be added again",
                        state.guild.id, exc)
            state.dave_pending_transitions.pop(transition_id, None)
            await state._recover_from_invalid_commit(transition_id)
            return False
        return True

    def _ready_for(self, transition_id: int) -> None:
        """The bot joined the group (welcome, or a commit while it had no keys): audio may go out once the
        transition executes, when every member has processed it."""
        state = self._connection
        if transition_id != 0:
            state.dave_pending_transitions[transition_id] = state.dave_protocol_version
            state._awaiting_execute = transition_id

    async def _send_ready(self, transition_id: int) -> None:
        if transition_id != 0:
            await self.send_transition_ready(transition_id)
