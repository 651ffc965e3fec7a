#!/usr/bin/env bash
# Install what this project needs on Debian 12 (idempotent), then `run` the monitor in the
# foreground with the built-in config, or run the `test` suite. Must run as root.
#   bash scripts/setup.sh run [--config FILE]     bash scripts/setup.sh test [pytest args]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
MODE="${1:-}"
shift || true

log() { printf '[setup] %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh must run as root (it installs packages and loads BPF programs)" >&2
    exit 1
fi
case "$MODE" in run|test|install) ;; *) echo "usage: $0 run|test|install [args]" >&2; exit 2 ;; esac

export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_install() {
    local missing=()
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$APT_UPDATED" -eq 0 ]; then apt-get update -q >/dev/null; APT_UPDATED=1; fi
    log "installing ${missing[*]}"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# 1. Debian packages: bcc (python3-bpfcc), venv, rsyslog (tests and foreground runs), iproute2.
apt_install python3-bpfcc python3-venv rsyslog ca-certificates iproute2 systemd systemd-container debootstrap

# 2. A kernel header tree bcc can compile against. None matches a custom running kernel, so take
#    Debian's newest cloud headers of the closest series; our programs read no struct through
#    them (offsets come from BTF), bcc only needs a consistent tree for its helper headers.
KREL="$(uname -r)"
MODDIR="/lib/modules/$KREL"
if [ ! -e "$MODDIR/build/include" ] && [ ! -e "$MODDIR/source/include/linux/kconfig.h" ]; then
    if [ "$APT_UPDATED" -eq 0 ]; then apt-get update -q >/dev/null; APT_UPDATED=1; fi
    ARCH="$(dpkg --print-architecture)"
    PKG="linux-headers-$KREL"
    if ! apt-cache show "$PKG" >/dev/null 2>&1; then
        PKG="$(apt-cache search --names-only "^linux-headers-6\.[0-9]+\.[0-9]+\+deb12-cloud-$ARCH\$" \
               | awk '{print $1}' | sort -V | tail -n 1)"
        [ -n "$PKG" ] || PKG="$(apt-cache search --names-only "^linux-headers-.*-$ARCH\$" | awk '{print $1}' | sort -V | tail -n 1)"
    fi
    [ -n "$PKG" ] || { echo "no linux-headers package found for $ARCH" >&2; exit 1; }
    apt_install "$PKG"
    VER="${PKG#linux-headers-}"
    COMMON="/usr/src/linux-headers-${VER%-*-*}-common"
    [ -d "$COMMON" ] || COMMON="/usr/src/linux-headers-${VER%-*}-common"
    mkdir -p "$MODDIR"
    ln -sfn "/usr/src/linux-headers-$VER" "$MODDIR/build"
    if [ -d "$COMMON" ]; then ln -sfn "$COMMON" "$MODDIR/source"; else ln -sfn "/usr/src/linux-headers-$VER" "$MODDIR/source"; fi
    log "kernel headers: $MODDIR/build -> /usr/src/linux-headers-$VER"
fi

# 3. tracefs (tracepoints) and the service user/group filterd runs as.
if [ ! -d /sys/kernel/tracing/events ]; then mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true; fi
getent group sysmon >/dev/null || groupadd --system sysmon
getent passwd sysmon >/dev/null || useradd --system --gid sysmon --home-dir /var/lib/sysmon \
    --no-create-home --shell /usr/sbin/nologin sysmon

# 4. The venv: Debian's python3 (bcc lives in its dist-packages), plus our package.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import bcc" 2>/dev/null; then
    rm -rf "$VENV"
    /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
STAMP="$VENV/.installed-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
if [ ! -e "$STAMP" ]; then
    log "installing the package and its Python dependencies into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check -e "$ROOT[test]"
    touch "$STAMP"
fi

case "$MODE" in
install) exit 0 ;;
run)
    # syslog: the monitor writes to /dev/log; start Debian's rsyslog if nothing listens there
    # (a socket left by a syslog daemon that has gone refuses every event).
    listening() { "$VENV/bin/python" -c 'import socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).connect("/dev/log")' 2>/dev/null; }
    if ! listening; then
        log "nothing listens on /dev/log: starting rsyslogd"
        rsyslogd
        for _ in $(seq 50); do listening && break; sleep 0.1; done
    fi
    exec "$VENV/bin/sysmonctl" run "$@"
    ;;
test)
    cd "$ROOT"
    "$VENV/bin/python" tools/gen_bpf_records.py --check
    "$VENV/bin/ruff" check .
    set +e
    "$VENV/bin/python" -m pytest "$@"
    rc=$?
    set -e
    [ "$rc" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
    exit "$rc"
    ;;
esac
