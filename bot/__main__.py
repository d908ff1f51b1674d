"""``python -m bot`` is ``speechbot`` (``run`` by default)."""

import sys

from bot.cli import main

sys.exit(main())
