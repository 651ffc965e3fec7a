"""Upstream's command-line grammar (`SysmonCommon:parsecommandline.c ParseCommandLine`), Linux subset.

Rules: only `-` prefixes; switch names are case-insensitive; multi-letter switches stand alone
after `-`; single-letter switches may be concatenated (`-accepteula` is one switch, `-ti` two); a
switch with an optional value takes the next argument unless it starts with `-`; the exclusive
actions (-i -c -u -m -z -s) cannot be combined. Any error is a UsageError (banner + usage, 87),
except the few with their own message (exit 87 too).
"""

from __future__ import annotations

NONE, OPTIONAL, REQUIRED = "none", "optional", "required"

# switch -> (argument kind, exclusive action?) from manifest.xml <options>.
SWITCHES: dict[str, tuple[str, bool]] = {
    "i": (OPTIONAL, True),
    "c": (OPTIONAL, True),
    "u": (OPTIONAL, True),
    "m": (NONE, True),
    "z": (REQUIRED, True),
    "s": (OPTIONAL, True),
    "t": (OPTIONAL, False),
    "btf": (OPTIONAL, False),
    "service": (NONE, False),
    "nologo": (NONE, False),
    "accepteula": (NONE, False),
    "-": (NONE, False),
    "a": (REQUIRED, False),
    "d": (REQUIRED, False),
    "r": (OPTIONAL, False),
    "dns": (OPTIONAL, False),
    "g": (REQUIRED, False),
    "h": (REQUIRED, False),
    "k": (REQUIRED, False),
    "l": (OPTIONAL, False),
    "n": (OPTIONAL, False),
    "x": (REQUIRED, False),
    "y": (REQUIRED, False),
}
MULTI_LETTER = tuple(s for s in SWITCHES if len(s) > 1 and s != "-")
# Refused as SysmonForLinux does (Windows-only), plus what this port does not do (yet): the
# command-line rule switches (upstream does not document them on Linux) and the internal dumps.
NOT_IMPLEMENTED = frozenset({"a", "d", "r", "z", "m", "dns", "g", "h", "k", "l", "n", "x", "y"})
HELP = ("-?", "-h", "-help", "/?")

ERROR_INVALID_PARAMETER = 87


class UsageError(Exception):
    """Bad command line: print `message` (if any) then usage; exit 87."""

    def __init__(self, message: str = "", show_usage: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.show_usage = show_usage


class Options:
    """The parsed command line. (Not a dataclass: the supervisor imports this module, and
    dataclasses brings inspect and ast, a megabyte it never uses.)"""

    def __init__(
        self,
        action: str | None = None,  # "i", "c", "u", "s" or None
        value: str | None = None,  # the action's argument
        switches: dict[str, str | None] | None = None,
        help: str | None = None,  # None, "usage" or "config"
        argv: tuple[str, ...] = (),
    ) -> None:
        self.action = action
        self.value = value
        self.switches: dict[str, str | None] = {} if switches is None else switches
        self.help = help
        self.argv = argv

    def __repr__(self) -> str:
        return f"Options({self.__dict__!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Options) and self.__dict__ == other.__dict__

    @property
    def debug(self) -> str | None:
        """None, "" (plain -t) or "verbose"."""
        if "t" not in self.switches:
            return None
        return self.switches["t"] or ""

    @property
    def service(self) -> bool:
        return "service" in self.switches


def parse(argv: list[str]) -> Options:
    """Parse argv (without the program name); raise UsageError on anything upstream refuses."""
    opts = Options(argv=tuple(argv))
    if argv and argv[0].lower() in HELP:
        rest = [a.lower() for a in argv[1:]]
        opts.help = "config" if rest and rest[0] in ("config", "configuration") else "usage"
        return opts
    if not argv:
        raise UsageError()
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            raise UsageError(f"Unexpected argument: {arg}")
        body = arg[1:].lower()
        names = [body] if body in SWITCHES and (len(body) > 1 or body == "-") else list(body)
        for pos, name in enumerate(names):
            if name not in SWITCHES:
                raise UsageError(f"Unknown option: -{name}")
            kind, exclusive = SWITCHES[name]
            value = None
            last = pos == len(names) - 1
            if kind != NONE and last and i < len(argv):
                nxt = argv[i]
                if kind == REQUIRED or not nxt.startswith("-"):
                    value = nxt
                    i += 1
            if kind == REQUIRED and value is None:
                raise UsageError(f"Missing argument for -{name}")
            if name in opts.switches:
                raise UsageError(f"Duplicate option: -{name}")
            opts.switches[name] = value
            if exclusive:
                if opts.action is not None:
                    raise UsageError(f"Options -{opts.action} and -{name} cannot be combined")
                opts.action, opts.value = name, value
    _check(opts)
    return opts


def _check(opts: Options) -> None:
    bad = NOT_IMPLEMENTED.intersection(opts.switches)
    if bad:
        raise UsageError("Option not implemented on Linux.", show_usage=False)
    if "-" in opts.switches and opts.action != "c":
        raise UsageError(
            "The '--' switch must be used with -c switch (config update) to set defaults.", show_usage=False
        )
    if "-" in opts.switches and opts.value is not None:
        raise UsageError("Options -- and a configuration file cannot be combined")
    if opts.debug not in (None, "", "verbose"):
        raise UsageError("Possible options for DebugMode: verbose", show_usage=False)
    if opts.action == "u" and opts.value is not None and opts.value.lower() != "force":
        raise UsageError("Invalid option for -u.", show_usage=False)
    if opts.service and opts.action not in (None, "i"):
        raise UsageError("-service is only valid with -i")
