"""One voice call's DAVE (end-to-end encryption) as Discord's voice gateway runs it: the MLS external sender.

Every client in a non-stage call is a member of one MLS group (``tests.loopback.mls`` has the wire format).
The gateway holds no keys; it decides who should be in the group and drives the members there:

* a client that connects gets CLIENTS_CONNECT (op 11) with everyone already in the call (the others get one
  with the newcomer) and the external sender (op 25); it answers with a key package (op 26);
* with an established group, the gateway proposes Add for each key package and Remove for each client that
  left (op 27, to the members); before the group exists (every member pending: the call's first clients, or
  after a sole-member reset), each pending member gets the Adds of the other pending members instead;
* members answer with commits (op 28); the first valid commit for the epoch wins: op 29 (transition id and
  commit) goes to the members, op 30 (the Welcome) to each member it adds, routed by key package reference;
* members answer op 23 when they have processed it; when all have (or after ``transition_timeout``), op 22
  executes the transition everywhere;
* a member that cannot process a commit or welcome sends op 31: it is removed (if it was in) and re-added
  once it sends a new key package;
* when one client is left in an established group, it gets op 24 (epoch 1) and op 21 (transition 0): a new
  group will be created when someone joins.

The whitepaper's gateway checks apply (key packages: user id of the session, signatures, lifetime; commits:
from a member, current epoch, referencing exactly the proposals broadcast in it, no new credential or key);
what a client does wrong lands in ``failures``. Members are the bot's voice websocket or simulated humans
(``tests.loopback.dave_listener``); the gateway talks to both through :class:`Member`.

Faults for tests: ``foreign_proposal`` and ``stale_proposal`` (op 27s a client must refuse),
``corrupt_commit_for`` (the next op 29 to a member is damaged), ``welcome_delay`` (op 30 held back),
``prefer_commits_from`` (whose commit wins a race), ``protocol_version`` 0 (no DAVE: a stage channel).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from tests.loopback import mls

log = logging.getLogger(__name__)

CLIENTS_CONNECT, CLIENT_DISCONNECT = 11, 13
PREPARE_TRANSITION, EXECUTE_TRANSITION, TRANSITION_READY, PREPARE_EPOCH = 21, 22, 23, 24
EXTERNAL_SENDER, KEY_PACKAGE, PROPOSALS, COMMIT_WELCOME = 25, 26, 27, 28
ANNOUNCE_COMMIT, WELCOME, INVALID_COMMIT_WELCOME = 29, 30, 31

DAVE_VERSION = 1
INIT_TRANSITION = 0
#: What :meth:`DaveCall._check_commit` says of a commit made before the member saw every proposal.
STALE = "stale"
#: How long the gateway waits for every member's op 23 before executing a transition anyway.
TRANSITION_TIMEOUT = 2.0


class Member(Protocol):
    """A client in the call, as the gateway sees it: who it is and how to send it something."""

    user_id: int

    async def send_json(self, op: int, d: object) -> None: ...

    async def send_binary(self, op: int, payload: bytes) -> None: ...


@dataclass(eq=False)
class _State:
    member: Member
    key_package: mls.KeyPackage | None = None
    leaf: int | None = None  # its leaf in the established group; None while pending
    signature_key: bytes | None = None


@dataclass(eq=False)
class _Proposal:
    message: bytes
    ref: bytes
    kind: int  # mls.ADD or mls.REMOVE
    state: _State | None  # whom it adds (its key package's owner); for a removal, whom it removes
    leaf: int | None = None  # the leaf a removal empties


@dataclass(eq=False)
class _Transition:
    id: int
    waiting: set[_State]
    timer: asyncio.TimerHandle | None = None
    notified: list[_State] = field(default_factory=list)


class DaveCall:
    """The MLS group of one voice channel, run from the gateway's side."""

    def __init__(
        self,
        channel_id: int,
        failures: list[str],
        *,
        protocol_version: int = DAVE_VERSION,
        transition_timeout: float = TRANSITION_TIMEOUT,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.channel_id = channel_id
        self.failures = failures
        self.protocol_version = protocol_version
        self.transition_timeout = transition_timeout
        self.on_change = on_change
        self.sender = mls.ExternalSender()
        self.members: list[_State] = []
        self.established = False
        self.epoch = 0
        self.leaves: list[_State | None] = []
        # Proposals of the current epoch. Established: broadcast to every member. Pending: each member's own list.
        self.proposals: list[_Proposal] = []
        self.sent_to: dict[_State, list[_Proposal]] = {}
        self.revoked: set[bytes] = set()  # refs revoked in this epoch: a commit made before the revocation is stale
        self.transition: _Transition | None = None  # a commit announced, not yet executed
        self._deferred = False  # membership changed during a transition: propose once it executes
        self._removals: list[_Proposal] = []  # removals decided, proposed when no transition is under way
        self._to_revoke: list[_Proposal] = []  # Adds no longer wanted (the member left or sent a new package)
        self._transition_ids = itertools.count(1)
        self.history: list[tuple[str, int, int]] = []  # (event, transition id, epoch): commits won, executions
        self.invalid_reports: list[tuple[int, int]] = []  # (user id, transition id) from op 31
        self.commits_won: dict[int, int] = {}  # user id → commits of theirs the gateway announced
        # faults
        self.welcome_delay = 0.0
        self.prefer_commits_from: int | None = None  # a user id whose commit wins while it is in the call
        self.hold_commits = False  # never announce a commit: the group never forms (a stuck voice server)
        self.unexpected: list[_Proposal] = []  # Adds for users who never connected (``unexpected_add``)
        self.accepted_unexpected: list[int] = []  # members whose commit took such an Add in
        self._corrupt_for: set[int] = set()
        self._bad_sender_for: set[int] = set()

    # -- who is in the call ---------------------------------------------------------------------------------

    def state_of(self, member: Member) -> _State | None:
        return next((s for s in self.members if s.member is member), None)

    def user_ids(self) -> list[int]:
        return [s.member.user_id for s in self.members]

    def group_user_ids(self) -> list[int]:
        """Who is in the established group now (by leaf)."""
        return [s.member.user_id for s in self.leaves if s is not None]

    async def connect(self, member: Member) -> None:
        """A client finished the handshake (SESSION_DESCRIPTION sent): tell everyone, send the external sender."""
        others = [s for s in self.members if s.member.user_id != member.user_id]
        state = _State(member)
        self.members.append(state)
        await member.send_json(CLIENTS_CONNECT, {"user_ids": [str(s.member.user_id) for s in others]})
        for other in others:
            await other.member.send_json(CLIENTS_CONNECT, {"user_ids": [str(member.user_id)]})
        if self.protocol_version:
            package = self.sender.package()
            if member.user_id in self._bad_sender_for:
                self._bad_sender_for.discard(member.user_id)
                package = package[:-3]  # cut short: no client can parse it
            await member.send_binary(EXTERNAL_SENDER, package)
        self._changed()

    async def disconnect(self, member: Member) -> None:
        """A client left (its websocket closed or its session ended)."""
        state = self.state_of(member)
        if state is None:
            return
        self.members.remove(state)
        if self.transition is not None:
            self.transition.waiting.discard(state)
        for other in self.members:
            await other.member.send_json(CLIENT_DISCONNECT, {"user_id": str(member.user_id)})
        if self.protocol_version:
            await self._membership_changed(left=state)
            if self.transition is not None and not self.transition.waiting:
                await self._execute()
        self._changed()

    # -- client → gateway -----------------------------------------------------------------------------------

    async def on_binary(self, member: Member, op: int, payload: bytes) -> None:
        state = self.state_of(member)
        if state is None:
            return
        if op == KEY_PACKAGE:
            await self._key_package(state, payload)
        elif op == COMMIT_WELCOME:
            await self._commit_welcome(state, payload)
        else:
            self.failures.append(f"dave: client {member.user_id} sent binary op {op}")
        self._changed()

    async def on_json(self, member: Member, op: int, d: dict[str, object]) -> None:
        state = self.state_of(member)
        if state is None:
            return
        transition_id = int(d["transition_id"])  # type: ignore[call-overload]
        if op == TRANSITION_READY:
            if self.transition is not None and self.transition.id == transition_id:
                self.transition.waiting.discard(state)
                if not self.transition.waiting:
                    await self._execute()
        elif op == INVALID_COMMIT_WELCOME:
            self.invalid_reports.append((member.user_id, transition_id))
            await self._invalid_commit_welcome(state)
        self._changed()

    async def _key_package(self, state: _State, payload: bytes) -> None:
        try:
            package = mls.parse_key_package(payload)
        except mls.MLSError as exc:
            self.failures.append(f"dave: key package from {state.member.user_id} refused: {exc}")
            return
        if package.user_id != state.member.user_id:
            self.failures.append(f"dave: key package of user {package.user_id} sent by {state.member.user_id}")
            return
        if state.leaf is not None:
            # A member starting over (after a reset of its own): out with the old leaf, in with the new package.
            self._leave_leaf(state)
        self._revoke_adds_of(state)
        state.key_package = package
        await self._membership_changed()

    async def _invalid_commit_welcome(self, state: _State) -> None:
        if self.transition is not None:
            self.transition.waiting.discard(state)
        state.key_package = None  # it resets and sends a new one; then it is added again
        if state.leaf is not None:
            self._leave_leaf(state)
            await self._membership_changed()
        if self.transition is not None and not self.transition.waiting:
            await self._execute()

    # -- proposals --------------------------------------------------------------------------------------------

    def _leave_leaf(self, state: _State) -> None:
        """Queue the removal of ``state``'s leaf (it stays in ``leaves`` until a commit removes it)."""
        leaf = state.leaf
        state.leaf = None
        state.signature_key = None
        if leaf is not None and not any(p.leaf == leaf for p in self._removals):
            self._removals.append(_Proposal(b"", b"", mls.REMOVE, state, leaf))

    def _revoke_adds_of(self, state: _State) -> None:
        """Forget a pending Add for ``state`` (its key package is replaced or it left)."""
        self._to_revoke.extend(p for p in self.proposals if p.kind == mls.ADD and p.state is state)

    async def _membership_changed(self, left: _State | None = None) -> None:
        """Bring proposals in line with who is in the call now (or once the transition under way executes)."""
        if left is not None:
            self._revoke_adds_of(left)
            if left.leaf is not None:
                self._leave_leaf(left)
        if self.transition is not None:
            self._deferred = True
            return
        await self._revoke()
        if self.established:
            in_group = [s for s in self.members if s.leaf is not None]
            if not in_group:  # nobody of the group is left: the clients still here start a new one
                self._reset_group(keep_key_packages=True)
            elif len(self.members) == 1:
                await self._sole_member_reset(in_group[0])
                return
            else:
                await self._propose_established()
                return
        await self._propose_pending()

    async def _revoke(self) -> None:
        stale = [p for p in self._to_revoke if p in self.proposals]
        self._to_revoke = []
        for proposal in stale:
            self.proposals.remove(proposal)
            self.revoked.add(proposal.ref)
        for state, sent in self.sent_to.items():
            revoked = [p for p in stale if p in sent]
            for proposal in revoked:
                sent.remove(proposal)
            if revoked and state in self.members:
                await state.member.send_binary(PROPOSALS, mls.revoke_payload(p.ref for p in revoked))

    async def _propose_established(self) -> None:
        new: list[_Proposal] = []
        for removal in self._removals:
            message = self.sender.proposal(self.channel_id, self.epoch, mls.remove_proposal(removal.leaf or 0))
            new.append(_Proposal(message, mls.proposal_ref(message), mls.REMOVE, removal.state, removal.leaf))
        self._removals = []
        proposed = {id(p.state) for p in self.proposals if p.kind == mls.ADD}
        for state in self.members:
            if state.leaf is None and state.key_package is not None and id(state) not in proposed:
                message = self.sender.proposal(self.channel_id, self.epoch, mls.add_proposal(state.key_package))
                new.append(_Proposal(message, mls.proposal_ref(message), mls.ADD, state))
        if not new:
            return
        self.proposals.extend(new)
        payload = mls.proposals_payload([p.message for p in new])
        for state in self.members:
            if state.leaf is not None:
                self.sent_to.setdefault(state, []).extend(new)
                await state.member.send_binary(PROPOSALS, payload)

    async def _propose_pending(self) -> None:
        """No group yet: every pending member with a key package gets the Adds of the others."""
        self._removals = []
        ready = [s for s in self.members if s.key_package is not None]
        for state in ready:
            if not any(p.kind == mls.ADD and p.state is state for p in self.proposals):
                assert state.key_package is not None
                message = self.sender.proposal(self.channel_id, 0, mls.add_proposal(state.key_package))
                self.proposals.append(_Proposal(message, mls.proposal_ref(message), mls.ADD, state))
        for state in ready:
            sent = self.sent_to.setdefault(state, [])
            new = [p for p in self.proposals if p.state is not state and p not in sent]
            if new:
                sent.extend(new)
                await state.member.send_binary(PROPOSALS, mls.proposals_payload([p.message for p in new]))

    # -- commits ----------------------------------------------------------------------------------------------

    async def _commit_welcome(self, state: _State, payload: bytes) -> None:
        try:
            commit, welcome = mls.split_commit_welcome(payload)
        except mls.MLSError as exc:
            self.failures.append(f"dave: op 28 from {state.member.user_id} does not parse: {exc}")
            return
        if self.transition is not None or commit.epoch != self.epoch:
            return  # a losing commit, or one for an epoch already gone: never broadcast
        if any(p.ref in commit.proposal_refs for p in self.unexpected):
            self.accepted_unexpected.append(state.member.user_id)
            return
        if self.hold_commits:
            return
        problem = self._check_commit(state, commit, welcome)
        if problem == STALE:
            return  # made before the latest proposals reached it: its next commit will have them
        if problem is not None:
            self.failures.append(f"dave: commit from {state.member.user_id} refused: {problem}")
            return
        preferred = self.prefer_commits_from
        if (preferred is not None and preferred != state.member.user_id
                and any(s.member.user_id == preferred and s in self.sent_to for s in self.members)):
            return  # a test wants another member's commit to win this race
        await self._announce(state, commit, welcome)

    def _check_commit(self, state: _State, commit: mls.Commit, welcome: mls.Welcome | None) -> str | None:
        if int.from_bytes(commit.group_id, "big") != self.channel_id or len(commit.group_id) != 8:
            return "for another group"
        expected_leaf = state.leaf if self.established else 0
        if commit.sender_leaf != expected_leaf:
            return f"sent as leaf {commit.sender_leaf}; the committer is leaf {expected_leaf}"
        sent = self.sent_to.get(state, [])
        if not commit.proposal_refs:
            return STALE  # libdave answers a revocation that leaves nothing with an empty commit: not broadcast
        refs, sent_refs = set(commit.proposal_refs), {p.ref for p in sent}
        if refs & self.revoked:
            return STALE
        if len(refs) != len(commit.proposal_refs) or not refs <= sent_refs:
            return "references proposals the gateway did not send it in this epoch"
        if refs != sent_refs:
            return STALE
        if commit.path_leaf is not None:
            if mls.user_id_from_identity(commit.path_leaf.identity) != state.member.user_id:
                return "changes the committer's credential"
            if self.established and commit.path_leaf.signature_key != state.signature_key:
                return "changes the committer's signature key"
        adds = [p for p in sent if p.kind == mls.ADD]
        if adds and welcome is None:
            return "adds members without a welcome"
        return None

    async def _announce(self, committer: _State, commit: mls.Commit, welcome: mls.Welcome | None) -> None:
        by_ref = {p.ref: p for p in self.sent_to.get(committer, [])}
        ordered = [by_ref[ref] for ref in commit.proposal_refs]
        if self.established:
            leaves = list(self.leaves)
            for proposal in ordered:
                if proposal.kind == mls.REMOVE and proposal.leaf is not None and proposal.leaf < len(leaves):
                    leaves[proposal.leaf] = None
        else:
            leaves = [committer]
            assert committer.key_package is not None  # proposals go only to pending members with a key package
            committer.signature_key = committer.key_package.leaf.signature_key
            committer.key_package = None
        added = [p.state for p in ordered if p.kind == mls.ADD and p.state is not None]
        for state in added:
            index = next((i for i, s in enumerate(leaves) if s is None), len(leaves))
            if index == len(leaves):
                leaves.append(state)
            else:
                leaves[index] = state
        while leaves and leaves[-1] is None:
            leaves.pop()
        existing = [s for s in leaves if s is not None and s not in added and s in self.members]
        welcomed = {p.key_package.ref: p for p in added if p.key_package is not None}
        if welcome is not None and set(welcome.new_members) != set(welcomed):
            self.failures.append(f"dave: the welcome from {committer.member.user_id} is not for the members it adds")
        transition = _Transition(self._next_transition_id(), set())
        self.transition = transition
        self.leaves = leaves
        for index, state in enumerate(leaves):
            if state is not None:
                state.leaf = index
                if state.key_package is not None and state in added:
                    state.signature_key = state.key_package.leaf.signature_key
        self.epoch += 1
        self.established = True
        self.proposals = []
        self.sent_to = {}
        self.revoked = set()
        self.commits_won[committer.member.user_id] = self.commits_won.get(committer.member.user_id, 0) + 1
        self.history.append(("commit", transition.id, self.epoch))
        tid = transition.id.to_bytes(2, "big")
        for state in existing:
            transition.waiting.add(state)
            transition.notified.append(state)
            data = commit.raw
            if state.member.user_id in self._corrupt_for:
                self._corrupt_for.discard(state.member.user_id)
                data = _corrupt(data)
            await state.member.send_binary(ANNOUNCE_COMMIT, tid + data)
        for state in added:
            state.key_package = None
            transition.waiting.add(state)
            transition.notified.append(state)
        if welcome is not None and added:
            if self.welcome_delay:
                asyncio.get_running_loop().call_later(
                    self.welcome_delay, lambda: asyncio.ensure_future(self._send_welcomes(added, tid, welcome)))
            else:
                await self._send_welcomes(added, tid, welcome)
        transition.timer = asyncio.get_running_loop().call_later(
            self.transition_timeout, lambda: asyncio.ensure_future(self._execute(transition.id)))

    async def _send_welcomes(self, added: list[_State], tid: bytes, welcome: mls.Welcome) -> None:
        for state in added:
            if state in self.members:
                await state.member.send_binary(WELCOME, tid + welcome.raw)

    async def _execute(self, transition_id: int | None = None) -> None:
        transition = self.transition
        if transition is None or (transition_id is not None and transition.id != transition_id):
            return
        self.transition = None
        if transition.timer is not None:
            transition.timer.cancel()
        self.history.append(("execute", transition.id, self.epoch))
        for state in transition.notified:
            if state in self.members:
                await state.member.send_json(EXECUTE_TRANSITION, {"transition_id": transition.id})
        if self._deferred or self._removals or any(
                s.leaf is None and s.key_package is not None for s in self.members):
            self._deferred = False
            await self._membership_changed()
        self._changed()

    def _next_transition_id(self) -> int:
        """Transition ids are u16 on the wire; 0 is reserved for the sole-member reset."""
        return next(self._transition_ids) % 65535 + 1

    # -- resets -----------------------------------------------------------------------------------------------

    def _reset_group(self, *, keep_key_packages: bool = False) -> None:
        self.established = False
        self.epoch = 0
        self.leaves = []
        self.proposals = []
        self.sent_to = {}
        self.revoked = set()
        self._removals = []
        self._to_revoke = []
        for state in self.members:
            state.leaf = None
            state.signature_key = None
            if not keep_key_packages:
                state.key_package = None

    async def _sole_member_reset(self, state: _State) -> None:
        """One member left in an established group: it starts a new group of its own (whitepaper)."""
        self._reset_group()
        self.history.append(("reset", INIT_TRANSITION, 1))
        await state.member.send_json(PREPARE_EPOCH, {"epoch": 1, "protocol_version": self.protocol_version})
        await state.member.send_json(PREPARE_TRANSITION, {"transition_id": INIT_TRANSITION,
                                                          "protocol_version": self.protocol_version})

    # -- faults -----------------------------------------------------------------------------------------------

    async def foreign_proposal(self, member: Member, key_package: bytes) -> None:
        """Send ``member`` an Add proposal signed by a key that is not this call's external sender."""
        package = mls.parse_key_package(key_package)
        message = mls.ExternalSender().proposal(self.channel_id, self.epoch, mls.add_proposal(package))
        await member.send_binary(PROPOSALS, mls.proposals_payload([message]))

    async def stale_proposal(self, member: Member, key_package: bytes) -> None:
        """Send ``member`` a properly signed Add proposal for an epoch that is not the group's."""
        package = mls.parse_key_package(key_package)
        message = self.sender.proposal(self.channel_id, self.epoch + 7, mls.add_proposal(package))
        await member.send_binary(PROPOSALS, mls.proposals_payload([message]))

    async def unexpected_add(self, key_package: bytes) -> None:
        """Propose, properly signed, to add a user who never connected to the call (no op 11 named them): every
        member must refuse it (whitepaper, Member Add). Revoked again after ``revoke_after`` seconds."""
        package = mls.parse_key_package(key_package)
        message = self.sender.proposal(self.channel_id, self.epoch, mls.add_proposal(package))
        self.unexpected.append(_Proposal(message, mls.proposal_ref(message), mls.ADD, None))
        for state in self.members:
            if state.leaf is not None:
                await state.member.send_binary(PROPOSALS, mls.proposals_payload([message]))

    async def revoke_unexpected(self) -> None:
        refs = [p.ref for p in self.unexpected]
        self.unexpected.clear()
        for state in self.members:
            if state.leaf is not None:
                await state.member.send_binary(PROPOSALS, mls.revoke_payload(refs))

    def bad_external_sender_for(self, user_id: int) -> None:
        """The next op 25 to ``user_id`` is damaged: it cannot form or join a group on that connection."""
        self._bad_sender_for.add(user_id)

    def corrupt_commit_for(self, user_id: int) -> None:
        """Damage the next commit announced to ``user_id``: it must report op 31 and be re-added."""
        self._corrupt_for.add(user_id)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


def _corrupt(commit: bytes) -> bytes:
    """The commit with one byte flipped in its middle (inside the update path, which every member decrypts and
    authenticates): it still parses, and no member can process it."""
    data = bytearray(commit)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)
