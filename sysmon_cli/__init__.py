"""The drop-in `sysmon` command: upstream Sysmon for Linux's switches, messages and exit codes.

Owns the user-facing front door (install, reconfigure, dump, uninstall, schema, help) and the
supervisor that runs the two daemons where systemd is not PID 1. The daemons themselves
(collector/, filterd/) know nothing about this package.
"""

__version__ = "0.1.0"
