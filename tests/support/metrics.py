"""Reading the bot's Prometheus ``/metrics`` in end-to-end tests."""

from __future__ import annotations

import math
import re
import socket

#: The loopback gateway answers a heartbeat after this long (tests/loopback/discord_gateway.py).
LOOPBACK_ACK_DELAY = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one Prometheus sample, or None if it is not exposed."""
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{key}="{value}"' in (match.group(1) or "") for key, value in labels.items()):
            return float(match.group(2))
    return None


def assert_gateway_latency_measured(text: str, shard: str) -> None:
    """``speechbot_gateway_latency_seconds`` for ``shard`` after its first heartbeat ACK (discord.py sends the
    first heartbeat as soon as the gateway says HELLO): exposed, finite, at least the loopback's ACK delay (a
    latency measured from the right beat) and far below one heartbeat interval (41.25 s: the value when a beat
    is measured against the previous one)."""
    latency = sample(text, "speechbot_gateway_latency_seconds", shard=shard)
    assert latency is not None, f"no gateway latency for shard {shard}:\n{text}"
    assert math.isfinite(latency) and LOOPBACK_ACK_DELAY * 0.9 <= latency < 10, latency
