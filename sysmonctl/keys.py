"""`sysmonctl keys`: make the CurveZMQ key pairs of a remote set-up and say where they go.

Owns key generation (zmq.auth.create_certificates, inside a private 0700 temporary directory
under a 0077 umask, then renamed into place, so a secret key is never readable by others, not
even for a moment) and the copy instructions. Loading and checking keys is shared/curve.py's.

  sysmonctl keys collector /etc/sysmon/keys   -> collector.key, collector.key_secret, clients/
  sysmonctl keys filterd   /etc/sysmon/keys   -> filterd.key, filterd.key_secret
  sysmonctl keys show FILE                    -> the Z85 public key, to compare across hosts
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from zmq.auth import create_certificates

from shared.curve import PUBLIC_SUFFIX, SECRET_SUFFIX, CurveError, load_public

DEFAULT_DIR = "/etc/sysmon/keys"


def _owner_ids(owner: str | None, role: str) -> tuple[int, int] | None:
    """Who should own the secret: --owner, else for filterd the `sysmon` user if it exists."""
    name = owner or ("sysmon" if role == "filterd" else None)
    if name is None:
        return None
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        if owner:
            raise CurveError(f"no such user: {owner}") from None
        return None
    return pw.pw_uid, pw.pw_gid


def make_pair(
    directory: str | os.PathLike[str], name: str, force: bool = False, owner: tuple[int, int] | None = None
) -> tuple[Path, Path]:
    """Create NAME.key (0644) and NAME.key_secret (0600) in `directory`; returns both paths."""
    d = Path(directory).absolute()
    d.mkdir(mode=0o755, parents=True, exist_ok=True)
    public, secret = d / (name + PUBLIC_SUFFIX), d / (name + SECRET_SUFFIX)
    if not force:
        for p in (public, secret):
            if p.exists():
                raise CurveError(f"{p} exists: not overwriting a key (--force replaces it)")
    old = os.umask(0o077)
    tmp = Path(tempfile.mkdtemp(prefix=".keys-", dir=d))
    try:
        pub_tmp, sec_tmp = (Path(p) for p in create_certificates(tmp, name))
        os.chmod(sec_tmp, 0o600)
        os.chmod(pub_tmp, 0o644)
        if owner is not None:
            os.chown(sec_tmp, *owner)
        os.replace(sec_tmp, secret)
        os.replace(pub_tmp, public)
    finally:
        os.umask(old)
        shutil.rmtree(tmp, ignore_errors=True)
    return public, secret


def _collector(args: argparse.Namespace) -> int:
    public, secret = make_pair(args.dir, args.name or "collector", args.force)
    clients = Path(args.dir).absolute() / "clients"
    clients.mkdir(mode=0o755, exist_ok=True)
    host = socket.gethostname()
    print(f"""\
collector key pair made:
  secret  {secret}  (0600: stays on this host)
  public  {public}

1. Copy {public} to every log host that runs a remote filterd, e.g. as
     /etc/sysmon/keys/collectors/{host}.key
   and name it in filterd's endpoint: --endpoint tcp://{host}:7755=/etc/sysmon/keys/collectors/{host}.key
2. Put the public key of each filterd allowed to subscribe into
     {clients}/<loghost>.key
   (each log host's filterd.key from `sysmonctl keys filterd`; re-read within seconds, no restart).
3. Start the collector with
     --endpoint tcp://0.0.0.0:7755 --curve-secret {secret} --curve-clients {clients}
   and open TCP port 7755 to the log hosts only (see docs/remote.md).""")
    return 0


def _filterd(args: argparse.Namespace) -> int:
    owner = _owner_ids(args.owner, "filterd")
    public, secret = make_pair(args.dir, args.name or "filterd", args.force, owner)
    who = pwd.getpwuid(owner[0]).pw_name if owner else pwd.getpwuid(os.geteuid()).pw_name
    host = socket.gethostname()
    print(f"""\
filterd key pair made:
  secret  {secret}  (0600, owner {who}: stays on this host)
  public  {public}

1. Copy {public} to every collector host this filterd subscribes to, as
     /etc/sysmon/keys/clients/{host}.key
   (a collector admits only the keys in its --curve-clients directory).
2. Copy each collector's public key here (e.g. /etc/sysmon/keys/collectors/HOST.key) and start filterd with
     --curve-secret {secret} --endpoint tcp://HOST:7755=/etc/sysmon/keys/collectors/HOST.key
   (repeat --endpoint for every collector; ipc:// endpoints can be mixed in).""")
    return 0


def _show(args: argparse.Namespace) -> int:
    print(load_public(args.file).decode())
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return args.keys_func(args)
    except (CurveError, OSError) as e:
        print(f"sysmonctl keys: {e}", file=sys.stderr)
        return 1


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register `keys` on sysmonctl's subcommand parser."""
    k = sub.add_parser(
        "keys",
        help="make CurveZMQ key pairs for remote filterd",
        description="Make CurveZMQ key pairs for a collector or a remote filterd.",
    )
    ks = k.add_subparsers(dest="role", required=True)
    for role, func, what in (
        ("collector", _collector, "the collector publishing on tcp://"),
        ("filterd", _filterd, "a filterd subscribing over tcp://"),
    ):
        r = ks.add_parser(role, help=f"key pair for {what}")
        r.add_argument("dir", nargs="?", default=DEFAULT_DIR, help=f"where to write (default {DEFAULT_DIR})")
        r.add_argument("--name", help=f"file name without suffix (default {role})")
        r.add_argument("--force", action="store_true", help="replace an existing key pair")
        if role == "filterd":
            r.add_argument("--owner", help="user owning the secret key (default: sysmon, if it exists)")
        r.set_defaults(func=run, keys_func=func)
    s = ks.add_parser("show", help="print the public key of a key file")
    s.add_argument("file")
    s.set_defaults(func=run, keys_func=_show)
