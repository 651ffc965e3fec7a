"""Unprivileged side: receive raw records -> correlate -> Sysmon event -> rules -> XML -> outputs.

Runs as its own user (it drops to it when started as root); nothing here reads /proc of the
monitored host, so the same filterd can serve collectors on other hosts.
"""

__version__ = "0.1.0"
