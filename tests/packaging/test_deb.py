"""The .deb: built by one command, installed with `apt install ./x.deb` on a clean Debian 12.

In a debootstrapped root (tests/packaging/debroot.py): apt pulls Debian's python3 libraries,
postinst creates the `sysmon` user and /opt/sysmon; `sysmon -s` works; every installed Python
module imports with Debian's libraries; `sysmon -c` validates and stores a config; an upgrade
keeps /opt/sysmon/config.xml; purge removes it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.packaging.debroot import DebianRoot

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

CONFIG = """<Sysmon schemaversion="4.90">
  <EventFiltering>
    <ProcessCreate onmatch="include">
      <Image condition="end with">/curl</Image>
    </ProcessCreate>
  </EventFiltering>
</Sysmon>
"""


def build(version: str, out: Path) -> Path:
    p = subprocess.run(
        ["bash", str(ROOT / "packaging/build-deb.sh"), "--version", version, "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    deb = Path(p.stdout.strip().splitlines()[-1])
    assert deb.name == f"sysmon-py_{version}_all.deb" and deb.exists()
    return deb


def test_install_upgrade_purge(tmp_path: Path) -> None:
    first, second = build("0.1.0", tmp_path), build("0.1.0+upgrade1", tmp_path)
    with DebianRoot() as deb:
        deb.run("apt-get", "update", "-q")
        deb.put(first, "/tmp/first.deb")
        deb.run("apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/first.deb", timeout=900)

        # the command and the schema
        r = deb.run("sysmon", "-s")
        assert r.stdout.startswith("Sysmon v0.1.0 - Monitors system events\n")
        assert '<manifest schemaversion="4.90" binaryversion="18">' in r.stdout
        assert 'rulename="eBPFEvent"' in r.stdout

        # user, state, units, commands
        assert deb.run("getent", "passwd", "sysmon").stdout.split(":")[6].strip() == "/usr/sbin/nologin"
        st = deb.run(
            "stat", "-c", "%a %U %G", "/opt/sysmon", "/opt/sysmon/config.xml", "/var/lib/sysmon"
        ).stdout
        assert st.split("\n")[:3] == ["750 root sysmon", "640 root sysmon", "750 sysmon sysmon"]
        for f in (
            "/lib/systemd/system/sysmon-collector.service",
            "/lib/systemd/system/sysmon-filterd.service",
            "/usr/bin/sysmonctl",
            "/usr/bin/sysmon-collector",
            "/usr/bin/sysmon-filterd",
            "/usr/lib/sysmon-py/bpf/include/common.h",
        ):
            deb.run("test", "-e", f)
        # Debian's libraries satisfy every module (bcc, zmq, msgpack, lxml), no pip involved
        deb.run(
            "env",
            "PYTHONPATH=/usr/lib/sysmon-py",
            "python3",
            "-P",
            "-c",
            "import bcc, zmq, msgpack, lxml, collector.main, filterd.main, sysmonctl.cli, sysmon_cli.main",
        )
        assert "sysmon-filterd" in deb.run("sysmon-filterd", "--help").stdout
        assert "run" in deb.run("sysmonctl", "--help").stdout

        # configure like upstream; nothing runs here (no systemd, not started), which is not an error
        (deb.root / "tmp/my.xml").write_text(CONFIG)
        r = deb.run("sysmon", "-accepteula", "-c", "/tmp/my.xml")
        assert "Configuration file validated." in r.stdout
        assert "Error: Sysmon is not installed." in r.stderr
        assert (deb.root / "opt/sysmon/config.xml").read_text() == CONFIG

        # upgrade keeps the config
        deb.put(second, "/tmp/second.deb")
        deb.run("apt-get", "install", "-y", "-q", "/tmp/second.deb")
        assert deb.run("dpkg-query", "-W", "-f=${Version}", "sysmon-py").stdout == "0.1.0+upgrade1"
        assert (deb.root / "opt/sysmon/config.xml").read_text() == CONFIG

        # purge removes /opt/sysmon and the state, and nothing of the package is left
        deb.run("apt-get", "purge", "-y", "-q", "sysmon-py")
        assert not (deb.root / "opt/sysmon").exists()
        assert not (deb.root / "usr/lib/sysmon-py").exists()
