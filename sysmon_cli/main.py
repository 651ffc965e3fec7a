"""`sysmon` entry point: banner, parse, root check, then one action (as upstream's sysmon command).

Exit codes as upstream: 0 ok; 87 (ERROR_INVALID_PARAMETER) for a bad command line, a rejected
config, `Option not implemented on Linux.` and `-c` when nothing runs; 228 (740 & 0xff,
ERROR_ELEVATION_REQUIRED) when not root; a daemon's own exit code when start-up fails.
"""

from __future__ import annotations

import os
import sys

from sysmon_cli import cmdline, text
from sysmon_cli.cmdline import ERROR_INVALID_PARAMETER, Options, UsageError
from sysmon_cli.paths import Paths
from sysmon_cli.service import backend
from sysmon_cli.state import DEFAULT_CONFIG, read_argv, write_argv, write_config
from sysmon_cli.supervisor import Supervisor

ERROR_ELEVATION_REQUIRED = 740 & 0xFF
CONFIG_FMT = " - {:<33}{}"


def main(argv: list[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except BrokenPipeError:  # `sysmon -s | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def run(args: list[str]) -> int:
    text.banner()
    try:
        opts = cmdline.parse(args)
    except UsageError as e:
        if e.message:
            print(e.message, file=sys.stderr)
        if e.show_usage:
            text.usage()
        return ERROR_INVALID_PARAMETER
    if opts.help == "config":
        sys.stderr.write(text.config_usage())
        return 0
    if opts.help:
        text.usage()
        return 0
    if opts.action == "s":
        return print_schema(opts.value)
    if os.geteuid() != 0:
        print("You need to run Sysmon as root.", file=sys.stderr)
        return ERROR_ELEVATION_REQUIRED
    paths = Paths.from_env()
    try:
        return dispatch(opts, paths)
    except KeyboardInterrupt:
        return 130


def dispatch(opts: Options, paths: Paths) -> int:
    btf = opts.switches.get("btf")
    if opts.service:  # what `-i` (without systemd) runs in the background
        return Supervisor(paths, opts.debug, btf).run()
    if opts.action == "i":
        return install(opts, paths, btf)
    if opts.action == "c":
        if "-" in opts.switches:
            return update(opts, paths, None)
        if opts.value is None:
            return dump(paths)
        return update(opts, paths, opts.value)
    if opts.action == "u":
        return uninstall(paths, force=opts.value is not None)
    if opts.debug is not None:  # -t alone: run in the foreground, events on stdout
        return foreground(paths, opts.debug, btf)
    return 0  # only no-op switches (-accepteula, -nologo)


def print_schema(version: str | None) -> int:
    from sysmon_cli import schema_print

    blocks = schema_print.select(version)
    if not blocks:
        print(f"Unknown schema version: {version}", file=sys.stderr)
        return ERROR_INVALID_PARAMETER
    sys.stdout.write("\n".join(blocks) + "\n")
    return 0


def validate(path: str) -> bytes | None:
    """Read and validate a config, printing upstream's lines; its bytes, or None if rejected."""
    from filterd.config.errors import ConfigError  # not at the top: the supervisor never needs lxml
    from filterd.config.loader import describe_load, load_config_bytes

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"Error: cannot read configuration file {path}: {e.strerror}", file=sys.stderr)
        return None
    try:
        config = load_config_bytes(data, path)
    except ConfigError as e:
        if e.upstream:
            print(e.upstream, file=sys.stderr)
        print(f"Error: {e}", file=sys.stderr)
        return None
    for line in describe_load(config):
        print(line)
    return data


def install(opts: Options, paths: Paths, btf: str | None) -> int:
    data = DEFAULT_CONFIG
    if opts.value is not None:
        loaded = validate(opts.value)
        if loaded is None:
            return ERROR_INVALID_PARAMETER
        data = loaded
    svc = backend(paths)
    svc.stop(force=False)  # upstream kills any other sysmon first
    write_config(paths, data, opts.value if opts.value is not None else "Defaults")
    write_argv(paths, ["sysmon", *opts.argv])
    rc = svc.start(opts.debug, btf)
    if rc == 0:
        print("Sysmon started.")
    return rc


def update(opts: Options, paths: Paths, path: str | None) -> int:
    """`-c file` (validate, store, reload) or `-c --` (defaults, reload)."""
    if path is None:
        data = DEFAULT_CONFIG
        print("Configuration reset to defaults.")
    else:
        loaded = validate(path)
        if loaded is None:
            return ERROR_INVALID_PARAMETER
        data = loaded
    write_config(paths, data, path if path is not None else "-")
    stored = read_argv(paths)[:1] or ["sysmon"]
    write_argv(paths, [*stored, *opts.argv])
    if not backend(paths).reload():
        print("Error: Sysmon is not installed.", file=sys.stderr)  # upstream: still a success
        return 0
    print("Configuration updated.")
    return 0


def dump(paths: Paths) -> int:
    import hashlib

    from filterd.config.errors import ConfigError
    from filterd.config.loader import load_config

    if not backend(paths).running():
        print("Sysmon is not running", file=sys.stderr)
        return ERROR_INVALID_PARAMETER
    try:
        data = paths.config.read_bytes()
        config = load_config(paths.config)
    except (OSError, ConfigError):
        print("No config to display", file=sys.stderr)
        return 0
    print("Current configuration:")
    print(CONFIG_FMT.format("Config file:", paths.config))
    print(CONFIG_FMT.format("Config hash:", "SHA256=" + hashlib.sha256(data).hexdigest()))
    print(CONFIG_FMT.format("HashingAlgorithms:", ",".join(config.hash_algorithms)))
    print()
    try:
        from filterd.config.dump import dump_config
    except ImportError:  # dump module not in this build
        print(f"Rule configuration (version {config.schema_version}): {len(config.rules)} rule groups")
        return 0
    sys.stdout.write(dump_config(config))
    return 0


def uninstall(paths: Paths, force: bool) -> int:
    backend(paths).stop(force)
    from collector.pins import remove_tree  # the pinned programs run on until unpinned

    remove_tree(paths.pins)
    print("Sysmon stopped.")
    return 0


def foreground(paths: Paths, debug: str, btf: str | None) -> int:
    svc = backend(paths)
    if svc.running():
        print("Sysmon is already running; stop it first with 'sysmon -u'.", file=sys.stderr)
        return ERROR_INVALID_PARAMETER
    if not paths.config.exists():
        write_config(paths, DEFAULT_CONFIG)
    return Supervisor(paths, debug, btf).run()
