#!/usr/bin/env bash
# Install speechbot as a systemd service run by a dedicated user (docs/deploy.md, "systemd"). From a checkout:
#   sudo deploy/install-systemd.sh                # the offline engine included: '.[local]'
#   sudo deploy/install-systemd.sh --extras postgres   # API only, with PostgreSQL ('' = core only)
# then put DISCORD_TOKEN (and the rest) in /etc/speechbot/speechbot.env and `sudo systemctl restart speechbot`.
#
# What goes where (the service user writes only its state directory):
#   /opt/speechbot/.venv            the bot, installed (not editable) from a copy of this checkout; owned by root
#   /etc/speechbot/speechbot.env    the configuration (mode 640, root:speechbot): kept if it already exists
#   /var/lib/speechbot              DATA_DIR (database, audio cache): created by systemd (StateDirectory=)
#   /etc/systemd/system/speechbot.service
#
# The checkout is only read: the package is built from a copy, so a source tree the installing user cannot write
# (another user's clone, a read-only mount) installs as well. Run again to upgrade.
#
# For tests and packaging: --prefix, --config-dir and --unit-dir put everything elsewhere; --no-user skips
# creating the service user; --no-systemctl installs the files without reloading or starting anything.
set -euo pipefail

SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/speechbot
CONFIG_DIR=/etc/speechbot
UNIT_DIR=/etc/systemd/system
SERVICE_USER=speechbot
EXTRAS=local
PYTHON=python3
MAKE_USER=1
SYSTEMCTL=1

die() { echo "install-systemd: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --config-dir) CONFIG_DIR="$2"; shift 2 ;;
        --unit-dir) UNIT_DIR="$2"; shift 2 ;;
        --user) SERVICE_USER="$2"; shift 2 ;;
        --extras) EXTRAS="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --no-user) MAKE_USER=0; shift ;;
        --no-systemctl) SYSTEMCTL=0; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
case "$EXTRAS" in
    ''|local|postgres|local,postgres|postgres,local) ;;
    *) die "--extras must be local, postgres, 'local,postgres' or '' (got '$EXTRAS')" ;;
esac
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 or newer (pass --python /path/to/python3.11)"

if [ "$MAKE_USER" = 1 ]; then
    [ "$(id -u)" = 0 ] || die "run as root (sudo), or pass --no-user"
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/speechbot --no-create-home \
            --shell /usr/sbin/nologin "$SERVICE_USER"
        echo "install-systemd: created the system user $SERVICE_USER"
    fi
fi

# Build from a copy of the sources: pip builds in the source tree, which the installing user may not be able to
# write (and which should not collect build/ and *.egg-info from root either).
BUILD="$(mktemp -d)"
trap 'rm -rf "$BUILD"' EXIT
mkdir "$BUILD/src"
cp -R "$SOURCE/pyproject.toml" "$SOURCE/README.md" "$SOURCE/bot" "$SOURCE/cogs" "$BUILD/src/"
chmod -R u+w "$BUILD/src"  # a read-only checkout gives read-only copies
find "$BUILD/src" -name __pycache__ -prune -exec rm -rf {} +

mkdir -p "$PREFIX"
[ -x "$PREFIX/.venv/bin/python" ] || "$PYTHON" -m venv "$PREFIX/.venv"
"$PREFIX/.venv/bin/pip" install --quiet --disable-pip-version-check --upgrade \
    "$BUILD/src${EXTRAS:+[$EXTRAS]}"
echo "install-systemd: installed speechbot${EXTRAS:+[$EXTRAS]} into $PREFIX/.venv"

mkdir -p "$CONFIG_DIR"
if [ ! -e "$CONFIG_DIR/speechbot.env" ]; then
    # DATA_DIR, METRICS_HOST and the rest of the unit's choices stay in the unit; the file holds the bot's settings.
    install -m 640 "$SOURCE/.env.example" "$CONFIG_DIR/speechbot.env"
    if [ "$MAKE_USER" = 1 ]; then chgrp "$SERVICE_USER" "$CONFIG_DIR/speechbot.env"; fi
    echo "install-systemd: wrote $CONFIG_DIR/speechbot.env from .env.example: set DISCORD_TOKEN in it"
fi

mkdir -p "$UNIT_DIR"
sed -e "s|/opt/speechbot|$PREFIX|g" -e "s|/etc/speechbot|$CONFIG_DIR|g" \
    -e "s|^User=speechbot$|User=$SERVICE_USER|" -e "s|^Group=speechbot$|Group=$SERVICE_USER|" \
    "$SOURCE/deploy/speechbot.service" > "$UNIT_DIR/speechbot.service"
chmod 644 "$UNIT_DIR/speechbot.service"
echo "install-systemd: wrote $UNIT_DIR/speechbot.service"

if [ "$SYSTEMCTL" = 1 ]; then
    systemctl daemon-reload
    systemctl enable speechbot.service
    if grep -Eq '^DISCORD_TOKEN=.+' "$CONFIG_DIR/speechbot.env"; then
        systemctl restart speechbot.service
        echo "install-systemd: started; follow it with: journalctl -u speechbot -f"
    else
        echo "install-systemd: enabled, not started: set DISCORD_TOKEN in $CONFIG_DIR/speechbot.env, then" \
             "systemctl start speechbot"
    fi
fi
