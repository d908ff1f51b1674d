"""Import boundaries checked in a fresh interpreter (the test process has everything imported already)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.bot_process import checkout_pythonpath


def test_the_package_stays_pure() -> None:
    """bot.text must not pull in discord.py, the network or the database: the adapter owns those."""
    code = (
        "import sys, bot.text; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('discord', 'aiohttp', 'sqlalchemy')); "
        "print(heavy)"
    )
    env = {**os.environ, "PYTHONPATH": checkout_pythonpath()}  # this checkout's bot.text
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert result.stdout.strip() == "[]"
