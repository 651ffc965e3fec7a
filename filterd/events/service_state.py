"""Sysmon events 4 (service state: Started/Stopped) and 16 (configuration), made by filterd itself.

They bypass the rules, as upstream. Event 16's Configuration is the path as the admin typed it
(`Defaults` for the built-in config) and its hash uses the config's HashAlgorithms.
"""

from __future__ import annotations

import time

from filterd import __version__
from filterd.render.timefmt import utc_time
from filterd.schema import SCHEMA_VERSION
from shared.digest import new_hash

from .registry import EventData, Reports, event_data

_HASH_NAMES = ("SHA1", "MD5", "SHA256")
ServiceState = event_data(4)
ConfigState = event_data(16)


def service_state(state: str) -> EventData:
    return ServiceState(
        UtcTime=utc_time(time.time_ns()), State=state, Version=__version__, SchemaVersion=SCHEMA_VERSION
    )


def data_hashes(data: bytes, algorithms: tuple[str, ...]) -> str:
    """`SHA1=..,MD5=..,SHA256=..` of the config bytes for the algorithms asked (IMPHASH gives
    nothing; none left means SHA256, as upstream's LinuxGetFileHash)."""
    algos = [a for a in algorithms if a in _HASH_NAMES] or ["SHA256"]
    return ",".join(f"{a}={new_hash(a, data).hexdigest()}" for a in algos)


def config_state(configuration: str, file_hash: str) -> EventData:
    return ConfigState(
        UtcTime=utc_time(time.time_ns()), Configuration=configuration, ConfigurationFileHash=file_hash
    )


DECLARATIONS = (Reports(4), Reports(16))
