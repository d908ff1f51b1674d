"""The MLS (RFC 9420) that a DAVE voice gateway speaks: the external sender's side, written from the RFC.

A DAVE voice gateway is not a member of the call's MLS group; it is the group's *external sender* (RFC 9420
§12.1.8.1): it hands out its credential and signature key (op 25), proposes adds and removes that it signs
(op 27), and reads — without decrypting anything — the commits and welcomes the members send (op 28) to pick a
winning commit, route each welcome and know which leaf every member holds. This module is that side and
nothing more, built on ``cryptography`` (ECDSA P-256 with SHA-256, ciphersuite 2, the only one DAVE v1 uses).

What the DAVE whitepaper asks of the gateway and is checked here: key packages carry a basic credential whose
identity is the big-endian user id of the authenticated session, the maximal lifetime, a valid leaf and package
signature; commits are PublicMessages from a member for the current epoch that reference (and only reference)
the proposals broadcast in that epoch, and do not change the committer's credential or signature key.

The TLS presentation language (RFC 9420 §2.1.2): integers big-endian, variable-length vectors prefixed with a
1/2/4-byte length whose top two bits give its size (the minimal encoding is required), ``optional<T>`` a
presence byte.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

MLS10 = 1
CIPHERSUITE_P256 = 2  # MLS_128_DHKEMP256_AES128GCM_SHA256_P256

# WireFormat
PUBLIC_MESSAGE, PRIVATE_MESSAGE, WELCOME, GROUP_INFO, KEY_PACKAGE = 1, 2, 3, 4, 5
# SenderType
MEMBER, EXTERNAL, NEW_MEMBER_PROPOSAL, NEW_MEMBER_COMMIT = 1, 2, 3, 4
# ContentType
APPLICATION, PROPOSAL, COMMIT = 1, 2, 3
# ProposalType
ADD, UPDATE, REMOVE = 1, 2, 3
# ProposalOrRefType
BY_VALUE, BY_REFERENCE = 1, 2
# CredentialType
BASIC = 1
# LeafNodeSource
FROM_KEY_PACKAGE, FROM_UPDATE, FROM_COMMIT = 1, 2, 3

MAX_LIFETIME = (0, 2**64 - 1)  # DAVE: key packages span all time (not_before 0, not_after 2^64 - 1)

# op 27's first byte
APPEND, REVOKE = 0, 1


class MLSError(ValueError):
    """A message that does not parse or does not pass the gateway's checks; the text says which."""


# -- the TLS presentation language ----------------------------------------------------------------------------


def varint(n: int) -> bytes:
    """RFC 9420 §2.1.2: the length prefix of a variable-size vector."""
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return struct.pack(">H", n | 0x4000)
    if n < 1 << 30:
        return struct.pack(">I", n | 0x80000000)
    raise MLSError(f"vector of {n} bytes is too long for MLS")


def vec(data: bytes) -> bytes:
    return varint(len(data)) + data


def u8(n: int) -> bytes:
    return bytes([n])


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def u64(n: int) -> bytes:
    return struct.pack(">Q", n)


class Reader:
    """Reads TLS-encoded fields from ``data``; every read past the end or non-minimal length is an MLSError."""

    def __init__(self, data: bytes, offset: int = 0) -> None:
        self.data = data
        self.pos = offset

    @property
    def done(self) -> bool:
        return self.pos == len(self.data)

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise MLSError(f"truncated: wanted {n} bytes at offset {self.pos} of {len(self.data)}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def varint(self) -> int:
        first = self.u8()
        prefix = first >> 6
        if prefix == 0:
            return first & 0x3F
        if prefix == 1:
            n = ((first & 0x3F) << 8) | self.u8()
            if n < 1 << 6:
                raise MLSError("non-minimal vector length")
            return n
        if prefix == 2:
            n = ((first & 0x3F) << 24) | int.from_bytes(self.take(3), "big")
            if n < 1 << 14:
                raise MLSError("non-minimal vector length")
            return n
        raise MLSError("invalid vector length prefix 0b11")

    def vec(self) -> bytes:
        return self.take(self.varint())

    def sub(self) -> Reader:
        """A reader over the next vector's contents."""
        return Reader(self.vec())

    def optional(self) -> bool:
        flag = self.u8()
        if flag > 1:
            raise MLSError(f"optional<> presence byte {flag}")
        return flag == 1

    def end(self, what: str) -> None:
        if not self.done:
            raise MLSError(f"{len(self.data) - self.pos} stray bytes after {what}")


# -- signatures and references ----------------------------------------------------------------------------------


def sign_content(label: str, content: bytes) -> bytes:
    """SignContent (RFC 9420 §5.1.2): what SignWithLabel actually signs."""
    return vec(b"MLS 1.0 " + label.encode()) + vec(content)


def sign_with_label(key: ec.EllipticCurvePrivateKey, label: str, content: bytes) -> bytes:
    return key.sign(sign_content(label, content), ec.ECDSA(hashes.SHA256()))  # DER, as mlspp and OpenMLS


def verify_with_label(public_key: bytes, label: str, content: bytes, signature: bytes) -> bool:
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        key.verify(signature, sign_content(label, content), ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def ref_hash(label: str, value: bytes) -> bytes:
    """RefHash (RFC 9420 §5.2) with SHA-256."""
    return hashlib.sha256(vec(label.encode()) + vec(value)).digest()


def public_key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def user_id_from_identity(identity: bytes) -> int:
    if len(identity) != 8:
        raise MLSError(f"basic credential identity of {len(identity)} bytes, not a 64-bit user id")
    return int.from_bytes(identity, "big")


# -- key packages -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafNode:
    encryption_key: bytes
    signature_key: bytes
    credential_type: int
    identity: bytes
    source: int
    lifetime: tuple[int, int] | None
    raw: bytes  # the whole LeafNode as sent


def _read_capabilities(r: Reader) -> None:
    for _ in range(5):  # versions, cipher_suites, extensions, proposals, credentials: vectors of uint16
        body = r.vec()
        if len(body) % 2:
            raise MLSError("capabilities vector of odd length")


def read_leaf_node(r: Reader) -> LeafNode:
    start = r.pos
    encryption_key = r.vec()
    signature_key = r.vec()
    credential_type = r.u16()
    if credential_type != BASIC:
        raise MLSError(f"credential type {credential_type}; DAVE allows basic credentials only")
    identity = r.vec()
    _read_capabilities(r)
    source = r.u8()
    lifetime = None
    if source == FROM_KEY_PACKAGE:
        lifetime = (r.u64(), r.u64())
    elif source == FROM_COMMIT:
        r.vec()  # parent_hash
    elif source != FROM_UPDATE:
        raise MLSError(f"leaf node source {source}")
    r.vec()  # extensions
    tbs_end = r.pos
    signature = r.vec()
    raw = r.data[start : r.pos]
    leaf = LeafNode(encryption_key, signature_key, credential_type, identity, source, lifetime, raw)
    # A key package's leaf is the only one whose LeafNodeTBS needs no group id and leaf index.
    if source == FROM_KEY_PACKAGE and not verify_with_label(
        signature_key, "LeafNodeTBS", r.data[start:tbs_end], signature
    ):
        raise MLSError("the leaf node's signature does not verify")
    return leaf


@dataclass(frozen=True)
class KeyPackage:
    raw: bytes  # the KeyPackage struct itself (what an Add proposal carries)
    leaf: LeafNode
    ref: bytes  # KeyPackageRef: how a Welcome names the new member

    @property
    def user_id(self) -> int:
        return user_id_from_identity(self.leaf.identity)


def parse_key_package(data: bytes) -> KeyPackage:
    """A key package as a client sends it in op 26 (the bare struct; an MLSMessage wrapper is accepted too),
    with every check the whitepaper asks of the gateway except the user id, which the caller compares."""
    r = Reader(data)
    if len(data) >= 4 and struct.unpack_from(">HH", data) == (MLS10, KEY_PACKAGE):
        r.take(4)
    start = r.pos
    version, suite = r.u16(), r.u16()
    if version != MLS10 or suite != CIPHERSUITE_P256:
        raise MLSError(f"key package for version {version} ciphersuite {suite}; DAVE v1 is 1/2")
    r.vec()  # init_key
    leaf = read_leaf_node(r)
    r.vec()  # extensions
    tbs_end = r.pos
    signature = r.vec()
    r.end("the key package")
    if leaf.source != FROM_KEY_PACKAGE:
        raise MLSError("the key package's leaf node is not from a key package")
    if leaf.lifetime != MAX_LIFETIME:
        raise MLSError(f"key package lifetime {leaf.lifetime}; DAVE requires (0, 2^64-1)")
    raw = data[start:]
    if not verify_with_label(leaf.signature_key, "KeyPackageTBS", data[start:tbs_end], signature):
        raise MLSError("the key package's signature does not verify")
    return KeyPackage(raw, leaf, ref_hash("MLS 1.0 KeyPackage Reference", raw))


# -- the external sender ----------------------------------------------------------------------------------------


class ExternalSender:
    """The gateway's MLS identity: a P-256 signature key and a basic credential; signs external proposals."""

    def __init__(self, identity: bytes = b"\x00\x01\x01\x00", key: ec.EllipticCurvePrivateKey | None = None) -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.identity = identity
        self.public_key = public_key_bytes(self.key)

    def package(self) -> bytes:
        """ExternalSender (RFC 9420 §12.1.8.1): op 25's payload."""
        return vec(self.public_key) + u16(BASIC) + vec(self.identity)

    def proposal(self, group_id: int, epoch: int, proposal: bytes, sender_index: int = 0) -> bytes:
        """A PublicMessage from this external sender carrying ``proposal``, as an MLSMessage.

        Signed over FramedContentTBS without a group context (external senders sign none, RFC 9420 §6.1) and
        with no membership tag (only member senders have one)."""
        content = (vec(u64(group_id)) + u64(epoch) + u8(EXTERNAL) + u32(sender_index) + vec(b"")
                   + u8(PROPOSAL) + proposal)
        tbs = u16(MLS10) + u16(PUBLIC_MESSAGE) + content
        return u16(MLS10) + u16(PUBLIC_MESSAGE) + content + vec(sign_with_label(self.key, "FramedContentTBS", tbs))


def add_proposal(key_package: KeyPackage) -> bytes:
    return u16(ADD) + key_package.raw


def remove_proposal(leaf_index: int) -> bytes:
    return u16(REMOVE) + u32(leaf_index)


def proposal_ref(message: bytes) -> bytes:
    """ProposalRef of a proposal sent as a PublicMessage: RefHash over AuthenticatedContent, which is the
    MLSMessage without its version (wire format, FramedContent, auth data; external messages have no tag)."""
    return ref_hash("MLS 1.0 Proposal Reference", message[2:])


def proposals_payload(messages: Sequence[bytes]) -> bytes:
    """op 27, append: the operation byte, then a vector of MLSMessages."""
    return u8(APPEND) + vec(b"".join(messages))


def revoke_payload(refs: Iterable[bytes]) -> bytes:
    """op 27, revoke: the operation byte, then a vector of ProposalRefs."""
    return u8(REVOKE) + vec(b"".join(vec(ref) for ref in refs))


# -- commits and welcomes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Commit:
    raw: bytes  # the MLSMessage
    group_id: bytes
    epoch: int
    sender_leaf: int
    proposal_refs: tuple[bytes, ...]
    path_leaf: LeafNode | None  # the committer's new leaf node when the commit has an update path


@dataclass(frozen=True)
class Welcome:
    raw: bytes
    new_members: tuple[bytes, ...]  # the KeyPackageRefs of the members it welcomes


def read_commit(r: Reader) -> Commit:
    """A commit MLSMessage (a PublicMessage from a member), read through its update path to its end."""
    start = r.pos
    version, wire_format = r.u16(), r.u16()
    if version != MLS10:
        raise MLSError(f"MLS version {version}")
    if wire_format != PUBLIC_MESSAGE:
        raise MLSError(f"a commit must be a PublicMessage (wire format 1), not wire format {wire_format}")
    group_id = r.vec()
    epoch = r.u64()
    sender_type = r.u8()
    if sender_type != MEMBER:
        raise MLSError(f"a commit must come from a member, not sender type {sender_type}")
    sender_leaf = r.u32()
    r.vec()  # authenticated_data
    content_type = r.u8()
    if content_type != COMMIT:
        raise MLSError(f"content type {content_type} where a commit was expected")
    refs = []
    proposals = r.sub()
    while not proposals.done:
        kind = proposals.u8()
        if kind != BY_REFERENCE:
            raise MLSError("a commit may only reference the gateway's proposals, not carry its own")
        refs.append(proposals.vec())
    path_leaf = None
    if r.optional():
        path_leaf = read_leaf_node(r)
        nodes = r.sub()
        while not nodes.done:
            nodes.vec()  # encryption_key
            secrets = nodes.sub()
            while not secrets.done:
                secrets.vec()  # kem_output
                secrets.vec()  # ciphertext
    r.vec()  # signature
    r.vec()  # confirmation_tag
    r.vec()  # membership_tag
    return Commit(r.data[start : r.pos], group_id, epoch, sender_leaf, tuple(refs), path_leaf)


def read_welcome(r: Reader) -> Welcome:
    start = r.pos
    suite = r.u16()
    if suite != CIPHERSUITE_P256:
        raise MLSError(f"welcome for ciphersuite {suite}")
    members = []
    secrets = r.sub()
    while not secrets.done:
        members.append(secrets.vec())  # new_member (KeyPackageRef)
        secrets.vec()  # kem_output
        secrets.vec()  # ciphertext
    r.vec()  # encrypted_group_info
    return Welcome(r.data[start : r.pos], tuple(members))


def split_commit_welcome(payload: bytes) -> tuple[Commit, Welcome | None]:
    """op 28: a commit MLSMessage immediately followed, when it adds members, by a bare Welcome."""
    r = Reader(payload)
    commit = read_commit(r)
    welcome = None
    if not r.done:
        wrapped = len(payload) - r.pos >= 4 and struct.unpack_from(">HH", payload, r.pos) == (MLS10, WELCOME)
        if wrapped:
            r.take(4)  # tolerated: a Welcome wrapped in an MLSMessage
        welcome = read_welcome(r)
    r.end("the commit and welcome")
    return commit, welcome
