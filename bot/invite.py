"""The OAuth2 invite URL, with exactly the permissions the bot uses."""

from __future__ import annotations

import base64
import binascii

import discord

#: Why each permission is needed: see docs/discord-application.md (the permissions table).
REQUIRED_PERMISSIONS = discord.Permissions(
    view_channel=True,  # see the channels it reads and answers in
    send_messages=True,  # notices in text channels (read-aloud)
    embed_links=True,  # settings and usage embeds
    attach_files=True,  # /speak uploads outside interaction responses
    connect=True,  # join voice channels
    speak=True,  # play audio in them
    send_voice_messages=True,  # /speak output:voice_message
)

SCOPES = ("bot", "applications.commands")


def application_id_from_token(token: str) -> int | None:
    """A bot token's first segment is its user id (= application id) in base64; None if it is not."""
    first = token.split(".", 1)[0]
    try:
        decoded = base64.b64decode(first + "=" * (-len(first) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    return int(decoded) if decoded.isdigit() else None


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=REQUIRED_PERMISSIONS, scopes=SCOPES)
