"""The current tables, as SQLAlchemy Core objects the queries use.

Typed columns rather than one JSON blob: the database itself says what a setting is, a bad value cannot
hide in a blob, and every change of shape is an explicit numbered migration. Changing a table here without
a migration in :mod:`bot.storage.migrations` fails ``test_migrations_build_the_declared_schema``.

Columns that identify a user carry ``info={"user": True}``; ``Store.forget_user`` must leave none of them
holding the forgotten ID (the tests check every marked column).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

USER = {"user": True}

#: ``user_prefs.guild_id`` for preferences that apply in every server (0 is never a real server's ID,
#: and unlike NULL it can be part of the primary key).
GLOBAL_SCOPE = 0

#: ``usage.user_id`` that a forgotten user's counts are moved to, so server budgets stay right.
FORGOTTEN_USER = 0

metadata = MetaData()

#: One row per applied migration; its shape never changes (it is read before any migration runs).
schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

#: A row exists only once a server changed something; the column names are GuildSettings' field names.
#: ``revision`` is bumped by every write, which also makes every write lock the row (concurrent writers
#: of one server queue up instead of overwriting each other).
guild_settings = Table(
    "guild_settings",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("revision", Integer, nullable=False),
    Column("autojoin", Boolean, nullable=False),
    Column("default_voice", String(100)),
    Column("default_speed", Float, nullable=False),
    Column("default_format", String(16)),
    Column("default_instructions", Text),
    Column("speak_output", String(16), nullable=False),
    Column("say_name", String(16), nullable=False),
    Column("name_repeat_window", Integer, nullable=False),
    Column("name_mode", String(16), nullable=False),
    Column("max_message_chars", Integer, nullable=False),
    Column("max_repeat_chars", Integer, nullable=False),
    Column("emoji_mode", String(16), nullable=False),
    Column("link_mode", String(16), nullable=False),
    Column("code_mode", String(16), nullable=False),
    Column("skip_bots", Boolean, nullable=False),
    Column("require_author_in_voice", Boolean, nullable=False),
    Column("optout_prefix", String(16), nullable=False),
    Column("required_role_id", BigInteger),
    Column("deny_role_id", BigInteger),
    Column("moderator_role_id", BigInteger),
    Column("idle_timeout", Integer),
    Column("alone_timeout", Integer),
    Column("announce_joins", Boolean, nullable=False),
    Column("backlog_speedup", Float, nullable=False),
    Column("daily_char_budget", BigInteger),
    Column("monthly_char_budget", BigInteger),
    Column("user_chars_per_minute", BigInteger),
    Column("hold_mode", String(16), nullable=False, server_default="early"),
    Column("hold_seconds", Float),
    Column("language", String(16), nullable=False, server_default="en"),
    Column("distinct_voices", Boolean, nullable=False, server_default=false()),
)

#: ``GuildSettings.read_channel_ids``; a table, so a deleted channel can be dropped from every server at once.
guild_read_channels = Table(
    "guild_read_channels",
    metadata,
    Column("guild_id", BigInteger, ForeignKey("guild_settings.guild_id", ondelete="CASCADE"), primary_key=True),
    Column("channel_id", BigInteger, primary_key=True),
)

user_prefs = Table(
    "user_prefs",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False, info=USER),
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("voice", String(100)),
    Column("speed", Float),
    Column("instructions", Text),
    Column("spoken_name", String(100)),
)

dictionary_entries = Table(
    "dictionary_entries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("guild_id", BigInteger, nullable=False),
    Column("pattern", String(100), nullable=False),
    Column("replacement", String(200), nullable=False),
    Column("is_regex", Boolean, nullable=False),
    Column("created_by", BigInteger, info=USER),
    UniqueConstraint("guild_id", "pattern", name="uq_dictionary_entries_guild_pattern"),
)

muted_users = Table(
    "muted_users",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False, info=USER),
    Column("muted_by", BigInteger, info=USER),
    Column("muted_at", DateTime(timezone=True), nullable=False),
    Index("ix_muted_users_user_id", "user_id"),
)

#: Per server, per user, per UTC day; budgets sum a range of days. ``characters``/``requests`` went to the speech
#: service (budgets count them); ``fallback_*`` were said by the fallback engine instead (``/usage`` shows them).
usage = Table(
    "usage",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("user_id", BigInteger, primary_key=True, autoincrement=False, info=USER),
    Column("day", Date, primary_key=True),
    Column("characters", BigInteger, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("fallback_characters", BigInteger, nullable=False, server_default="0"),
    Column("fallback_requests", Integer, nullable=False, server_default="0"),
    Index("ix_usage_guild_id_day", "guild_id", "day"),
    Index("ix_usage_user_id", "user_id"),
)

#: The voice channel the bot is in, per server: written on join (and move), deleted when it leaves on purpose or
#: is removed; a graceful shutdown keeps it, so the next start rejoins. No user is named here.
voice_sessions = Table(
    "voice_sessions",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("channel_id", BigInteger, nullable=False),
    Column("joined_at", DateTime(timezone=True), nullable=False),
)

#: The bot owner's bot-wide blocklists and engine kill switch (``/owner``). A blocked user's ID is kept on
#: purpose (abuse prevention is why it exists), so ``forget_user`` leaves it: not marked ``USER``.
blocked_users = Table(
    "blocked_users",
    metadata,
    Column("user_id", BigInteger, primary_key=True, autoincrement=False),
    Column("blocked_at", DateTime(timezone=True), nullable=False),
)

blocked_guilds = Table(
    "blocked_guilds",
    metadata,
    Column("guild_id", BigInteger, primary_key=True, autoincrement=False),
    Column("blocked_at", DateTime(timezone=True), nullable=False),
)

#: Engines (``openai``, ``realtime``, ``local``) the owner switched off bot-wide.
disabled_engines = Table(
    "disabled_engines",
    metadata,
    Column("engine", String(32), primary_key=True),
    Column("disabled_at", DateTime(timezone=True), nullable=False),
)
