"""Self-tests of the loopback voice gateway's DAVE side: its MLS messages against two implementations that are
not ours (Discord's libdave through ``dave.py``, and davey, which the bot uses), and the call's state machine
with simulated humans."""

from __future__ import annotations

import asyncio

import dave
import davey
import pytest

from tests.loopback import mls
from tests.loopback.dave_call import DaveCall
from tests.loopback.dave_listener import Listener, stranger_key_package

CHANNEL = 1_234_567_890_123_456_789
BOT, ALICE, BOB = 111, 222, 333


def libdave_member(user_id: int, sender: mls.ExternalSender) -> dave.Session:
    session = dave.Session(None)
    session.init(1, CHANNEL, str(user_id), None)
    session.set_external_sender(sender.package())
    return session


def test_libdave_and_davey_build_one_group_from_the_gateways_messages_and_hear_each_other() -> None:
    sender = mls.ExternalSender()
    bot = davey.DaveSession(1, BOT, CHANNEL)
    bot.set_external_sender(sender.package())
    alice = libdave_member(ALICE, sender)
    bot_kp = mls.parse_key_package(bot.get_serialized_key_package())
    alice_kp = mls.parse_key_package(alice.get_marshalled_key_package())
    assert (bot_kp.user_id, alice_kp.user_id) == (BOT, ALICE)

    # no group yet: each pending member gets the other's Add; davey's commit wins
    add_alice = sender.proposal(CHANNEL, 0, mls.add_proposal(alice_kp))
    result = bot.process_proposals(davey.ProposalsOperationType.append,
                                   mls.proposals_payload([add_alice])[1:], [BOT, ALICE])
    assert alice.process_proposals(mls.proposals_payload([sender.proposal(CHANNEL, 0, mls.add_proposal(bot_kp))]),
                                   {str(BOT), str(ALICE)})
    commit, welcome = mls.split_commit_welcome(result.commit + result.welcome)
    assert commit.proposal_refs == (mls.proposal_ref(add_alice),) and commit.epoch == 0 and commit.sender_leaf == 0
    assert welcome is not None and welcome.new_members == (alice_kp.ref,)
    bot.process_commit(commit.raw)
    assert alice.process_welcome(welcome.raw, {str(BOT), str(ALICE)}) is not None

    # bob joins the established group: libdave commits, davey processes it
    bob = libdave_member(BOB, sender)
    bob_kp = mls.parse_key_package(bob.get_marshalled_key_package())
    add_bob = sender.proposal(CHANNEL, 1, mls.add_proposal(bob_kp))
    recognized = {str(BOT), str(ALICE), str(BOB)}
    commit_bytes = alice.process_proposals(mls.proposals_payload([add_bob]), recognized)
    bot.process_proposals(davey.ProposalsOperationType.append, mls.proposals_payload([add_bob])[1:],
                          [BOT, ALICE, BOB])
    commit, welcome = mls.split_commit_welcome(bytes(commit_bytes))
    assert commit.sender_leaf == 1 and commit.epoch == 1 and welcome is not None
    assert not isinstance(alice.process_commit(commit.raw), dave.RejectType)
    bot.process_commit(commit.raw)
    assert bob.process_welcome(welcome.raw, recognized) is not None
    assert bot.epoch == 2 and sorted(int(u) for u in bot.get_user_ids()) == [BOT, ALICE, BOB]

    frame = bot.encrypt_opus(b"\xfc" + bytes(range(40)))
    for listener in (alice, bob):
        decryptor = dave.Decryptor()
        decryptor.transition_to_key_ratchet(listener.get_key_ratchet(str(BOT)))
        assert decryptor.decrypt(dave.MediaType.audio, frame) == b"\xfc" + bytes(range(40))

    # a removal and a revocation: both libraries take them
    remove_bob = sender.proposal(CHANNEL, 2, mls.remove_proposal(2))
    assert bot.process_proposals(davey.ProposalsOperationType.append, mls.proposals_payload([remove_bob])[1:],
                                 [BOT, ALICE]) is not None
    assert bot.process_proposals(davey.ProposalsOperationType.revoke,
                                 mls.revoke_payload([mls.proposal_ref(remove_bob)])[1:], [BOT, ALICE]) is None


def test_key_packages_are_checked_as_the_whitepaper_asks() -> None:
    package = bytearray(stranger_key_package(CHANNEL, ALICE))
    assert mls.parse_key_package(bytes(package)).user_id == ALICE
    package[-10] ^= 0x01  # inside the signature
    with pytest.raises(mls.MLSError, match="signature"):
        mls.parse_key_package(bytes(package))
    with pytest.raises(mls.MLSError, match="truncated"):
        mls.parse_key_package(bytes(package[:100]))


def test_vector_lengths_round_trip_and_must_be_minimal() -> None:
    for n in (0, 63, 64, 16383, 16384, 2**30 - 1):
        reader = mls.Reader(mls.varint(n))
        assert reader.varint() == n and reader.done
    with pytest.raises(mls.MLSError, match="non-minimal"):
        mls.Reader(b"\x40\x05").varint()
    with pytest.raises(mls.MLSError, match="0b11"):
        mls.Reader(b"\xc0\x00\x00\x00\x00\x00\x00\x01").varint()


async def settled(call: DaveCall, *user_ids: int) -> None:
    for _ in range(200):
        if sorted(call.group_user_ids()) == sorted(user_ids) and call.transition is None:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"group {call.group_user_ids()} (transition {call.transition}), wanted {user_ids}")


async def test_a_call_of_humans_forms_a_group_follows_joins_and_leaves_and_resets_when_one_is_left() -> None:
    failures: list[str] = []
    call = DaveCall(CHANNEL, failures, transition_timeout=1.0)
    alice, bob, carol = (Listener(user_id, call, latency=0.005) for user_id in (ALICE, BOB, 444))
    await alice.join()
    await asyncio.sleep(0.05)
    assert not call.established  # one member: a pending group of its own, nothing to commit
    await bob.join()
    await settled(call, ALICE, BOB)
    await carol.join()
    await settled(call, ALICE, BOB, 444)
    await bob.leave()
    await settled(call, ALICE, 444)
    await carol.leave()
    for _ in range(100):
        if ("reset", 0, 1) in call.history:
            break
        await asyncio.sleep(0.01)
    assert ("reset", 0, 1) in call.history and not call.established  # alice starts over on her own
    await bob.join()
    await settled(call, ALICE, BOB)
    assert failures == [] and alice.mls_failures == [] and bob.mls_failures == []
    for listener in (alice, bob):
        await listener.leave()


async def test_a_commit_referencing_proposals_the_gateway_never_sent_is_refused() -> None:
    failures: list[str] = []
    call = DaveCall(CHANNEL, failures)
    alice, bob = Listener(ALICE, call, latency=0.005), Listener(BOB, call, latency=0.005)
    await alice.join()
    await bob.join()
    await settled(call, ALICE, BOB)
    forged = mls.ExternalSender(key=call.sender.key)  # the gateway's own key: valid, but never broadcast
    extra = forged.proposal(CHANNEL, call.epoch, mls.add_proposal(
        mls.parse_key_package(stranger_key_package(CHANNEL, 555))))
    commit = alice.session.process_proposals(mls.proposals_payload([extra]), {str(ALICE), str(BOB), "555"})
    await call.on_binary(alice, 28, bytes(commit))
    assert len(failures) == 1 and "did not send it" in failures[0]
    assert call.transition is None and call.epoch == 1
    for listener in (alice, bob):
        await listener.leave()
