"""What `sysmon` prints that is not an error: banner, usage (`-?`) and config help (`-? config`).

Upstream (`SysmonCommon:usage.c`) always prints the banner first, then usage on stderr. The
condition descriptions here state what the code does: upstream's help text has `excludes any`
and `excludes all` the wrong way round (upstream rules.c).
"""

from __future__ import annotations

import sys

from sysmon_cli import __version__

BANNER = (
    f"Sysmon v{__version__} - Monitors system events\n"
    "Sysmon for Linux, re-implemented in Python (root eBPF collector, unprivileged filterd)\n"
    "Compatible with Sysinternals Sysmon for Linux (schema 4.90)\n"
)

USAGE = """\
Usage:
Install:                 sysmon -i [<configfile>]
Update configuration:    sysmon -c [<configfile>]
Print schema:            sysmon -s [<schema version>]
Uninstall:               sysmon -u [force]
  -c   Update configuration of an installed Sysmon driver or dump the
       current configuration if no other argument is provided. Optionally,
       a configuration file can be specified. '-c --' restores the default
       configuration.
  -i   Install service and driver. Optionally take a configuration file.
  -s   Print configuration schema definition of the specified version.
       Specify 'all' to dump all schema versions (default is latest).
  -u   Uninstall service and driver. Adding force causes uninstall to proceed
       even when some components are not installed.
  -t   Run in debug mode (events are also printed on stdout). Specify
       'verbose' for more output. Alone, runs in the foreground until Ctrl-C.
  -btf <file>  Use this BTF file instead of /sys/kernel/btf/vmlinux.
  -accepteula  Accepted for compatibility; there is no EULA.
  -?   This help menu. Use '-? config' for configuration file help.

The service logs events to syslog with the tag 'sysmon' (by default
/var/log/syslog on Debian). The collector runs as root and loads the eBPF
programs; rules, rendering and output run in the unprivileged 'sysmon' user.

Use the '-? config' command for configuration file documentation.

Neither install nor uninstall requires a reboot.
"""

CONDITIONS = (
    ("is", "Default, values are equals."),
    ("is any", "The field equals one of the ; delimited values."),
    ("is not", "Values are different."),
    ("contains", "The field contains this value."),
    ("contains any", "The field contains any of the ; delimited values."),
    ("contains all", "The field contains all of the ; delimited values."),
    ("excludes", "The field does not contain this value."),
    ("excludes any", "The field contains none of the ; delimited values."),
    ("excludes all", "At least one of the ; delimited values is not in the field."),
    ("begin with", "The field begins with this value."),
    ("not begin with", "The field does not begin with this value."),
    ("end with", "The field ends with this value."),
    ("not end with", "The field does not end with this value."),
    ("less than", "Lexicographical comparison is less than zero."),
    ("more than", "Lexicographical comparison is more than zero."),
    ("image", "Match an image path (on Linux: the full path)."),
)


def config_usage() -> str:
    """`sysmon -? config`: file format, options, conditions and the event tags."""
    from filterd import schema  # only here: the supervisor, which shares this module, stays small
    from filterd.events.registry import registry

    out = [
        f"Configuration usage (current schema is {schema.SCHEMA_VERSION}):",
        "",
        'Sysmon is configured with an XML file whose root is <Sysmon schemaversion="...">:',
        "",
        f'  <Sysmon schemaversion="{schema.SCHEMA_VERSION}">',
        "    <HashAlgorithms>sha256</HashAlgorithms>",
        "    <EventFiltering>",
        '      <RuleGroup name="" groupRelation="or">',
        '        <ProcessCreate onmatch="include">',
        '          <Image condition="end with">/curl</Image>',
        "        </ProcessCreate>",
        "      </RuleGroup>",
        "    </EventFiltering>",
        "  </Sysmon>",
        "",
        "Options (elements under <Sysmon>):",
        "  HashAlgorithms   sha1, md5, sha256, imphash or * (ProcessCreate Hashes field).",
        "  FieldSizes       Field:N[,Field:N...]: maximum length of a field in the output.",
        "  DnsLookup        Accepted, no effect (host names are always '-').",
        "  CheckRevocation, ArchiveDirectory, DriverName and CaptureClipboard are Windows-only",
        "  and rejected with 'Option not implemented on Linux.'.",
        "",
        'Event filtering: each event tag takes onmatch="include" or onmatch="exclude"; its',
        'children are field filters (<Field condition="...">value</Field>) or <Rule',
        'groupRelation="and|or"> aggregates. Exclude matches win over include matches.',
        "",
        "Filtering conditions:",
    ]
    out += [f"  {name:<15} {desc}" for name, desc in CONDITIONS]
    out += ["", "Events (tag, id, description; * = emitted on Linux):"]
    emitted = registry().linux_event_ids
    for ev in schema.EVENT_TYPES:
        if ev.rule_tag is None:
            continue
        star = "*" if ev.id in emitted else " "
        out.append(f"  {star} {ev.rule_tag:<22} {ev.id:>3}  {ev.template}")
    out += ["", "Field names of an event: sysmon -s"]
    return "\n".join(out) + "\n"


def banner(stream=None) -> None:
    (stream or sys.stdout).write(BANNER + "\n")
    (stream or sys.stdout).flush()


def usage(stream=None) -> None:
    (stream or sys.stderr).write(USAGE)
