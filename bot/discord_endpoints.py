"""Point discord.py at another Discord: a REST proxy in production, the loopback double in tests.

discord.py has no base-URL option; ``Route.BASE`` and ``DiscordWebSocket.DEFAULT_GATEWAY`` are the
documented-by-code seams (every route and webhook URL is built from the former at request time).
"""

from __future__ import annotations

import os
import ssl

import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route


def apply_endpoint_overrides(api_base: str | None, gateway_url: str | None) -> None:
    """Redirect REST (and interaction/webhook) calls and the gateway connection, when configured."""
    if api_base:
        Route.BASE = api_base.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


def tls_context() -> ssl.SSLContext:
    """A verifying TLS context that also trusts ``SSL_CERT_FILE`` when set.

    aiohttp reads ``SSL_CERT_FILE`` only when it is imported; building the context here makes a value
    from ``.env`` work too (voice websockets are always TLS).
    """
    return ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
