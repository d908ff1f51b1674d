"""speechbot: a Discord text-to-speech bot (core package; never imports ``cogs``)."""

__version__ = "0.1.0"
