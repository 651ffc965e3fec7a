#!/usr/bin/env bash
# Build dist/sysmon-py_<version>_all.deb from this tree with dpkg-deb alone (no debhelper).
#   bash packaging/build-deb.sh [--version X] [--out DIR]
# Layout: Python packages and BPF sources in /usr/lib/sysmon-py (Debian's python3 and its
# python3-bpfcc/-zmq/-msgpack/-lxml; no pip at install time), /usr/bin wrappers, the two
# systemd units in /lib/systemd/system, docs in /usr/share/doc/sysmon-py. Maintainer scripts
# in packaging/debian/. Prints the path of the .deb on stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION=""
OUT="$ROOT/dist"
while [ $# -gt 0 ]; do
    case "$1" in
    --version) VERSION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    *) echo "usage: $0 [--version X] [--out DIR]" >&2; exit 2 ;;
    esac
done
if [ -z "$VERSION" ]; then
    VERSION="$(/usr/bin/python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' "$ROOT/pyproject.toml")"
fi

PKG=sysmon-py
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/sysmon-deb.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
LIB="$STAGE/usr/lib/$PKG"
mkdir -p "$LIB" "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/usr/share/doc/$PKG" "$STAGE/DEBIAN"

# 1. Python packages and BPF sources (collector/loader.py finds <lib>/bpf next to collector/).
for d in collector filterd shared sysmonctl sysmon_cli bpf; do
    cp -r "$ROOT/$d" "$LIB/$d"
done
find "$LIB" \( -name __pycache__ -o -name '*.pyc' -o -name '*.egg-info' \) -prune -exec rm -rf {} +

# 2. Commands: Debian's python3, our packages first on the path, no current directory (-P).
wrapper() { # name module
    cat > "$STAGE/usr/bin/$1" <<WRAP
#!/bin/sh
# $1 ($PKG $VERSION): runs $2 from /usr/lib/$PKG with Debian's python3.
PYTHONPATH=/usr/lib/$PKG
export PYTHONPATH
exec /usr/bin/python3 -P -m $2 "\$@"
WRAP
    chmod 0755 "$STAGE/usr/bin/$1"
}
wrapper sysmon sysmon_cli
wrapper sysmonctl sysmonctl
wrapper sysmon-collector collector
wrapper sysmon-filterd filterd

# 3. Units, docs, maintainer scripts.
install -m 0644 "$ROOT"/packaging/systemd/*.service "$STAGE/lib/systemd/system/"
for f in operations.md compatibility.md; do
    [ -e "$ROOT/docs/$f" ] && install -m 0644 "$ROOT/docs/$f" "$STAGE/usr/share/doc/$PKG/"
done
install -m 0644 "$ROOT/packaging/debian/copyright" "$STAGE/usr/share/doc/$PKG/copyright"
for s in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$s" "$STAGE/DEBIAN/$s"
done
SIZE="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@SIZE@/$SIZE/" "$ROOT/packaging/debian/control" > "$STAGE/DEBIAN/control"

chmod -R u+rwX,go+rX,go-w "$STAGE"
mkdir -p "$OUT"
DEB="$OUT/${PKG}_${VERSION}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "$DEB"
