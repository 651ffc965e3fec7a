"""Events 4 (service state) and 16 (configuration), made by filterd itself."""

from __future__ import annotations

import hashlib
import re

from filterd import __version__, schema
from filterd.events.service_state import config_state, data_hashes, service_state

UTC = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")


def test_service_state() -> None:
    ev = dict(zip(schema.BY_ID[4].fields, service_state("Stopped"), strict=True))
    assert UTC.match(ev.pop("UtcTime"))
    assert ev == {"State": "Stopped", "Version": __version__, "SchemaVersion": "4.90"}


def test_config_state_and_its_hash() -> None:
    data = b"<Sysmon schemaversion='4.90'/>"
    h = data_hashes(data, ("MD5", "SHA256", "IMPHASH"))
    assert h == f"MD5={hashlib.md5(data).hexdigest()},SHA256={hashlib.sha256(data).hexdigest()}"
    assert (
        data_hashes(data, ("IMPHASH",)) == f"SHA256={hashlib.sha256(data).hexdigest()}"
    )  # none left: SHA256
    ev = dict(zip(schema.BY_ID[16].fields, config_state("/etc/sysmon.xml", h), strict=True))
    assert UTC.match(ev.pop("UtcTime"))
    assert ev == {"Configuration": "/etc/sysmon.xml", "ConfigurationFileHash": h}
