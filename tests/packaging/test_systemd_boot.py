"""The units for real: a Debian 12 root with systemd as PID 1 in systemd-nspawn, our .deb in it.

This machine's PID 1 is not systemd, but systemd boots in a container here. The container
shares the kernel, so the collector loads its BPF programs for real; it gets the host's kernel
headers (/lib/modules, /usr/src), tracefs and BTF read-only, and all capabilities (the units
then take away what they do not grant). Checked: `sysmon -i` enables and starts both hardened
units; events reach the journal with the tag `sysmon`; filterd, asked over its control socket
(`selftest`), cannot exec, fork, write outside its state directory or open an internet socket,
both with its own sandbox inside the unit's and with the unit's alone (a drop-in adding
--no-sandbox); `sysmon -c` reloads filterd while the collector keeps its pid and start time
(event 16 logged); a SIGSTOPped collector is killed by systemd's watchdog and restarted, and
events flow again; JSON lines asked for in /opt/sysmon/outputs land in /var/log/sysmon (the unit's
LogsDirectory, inside both sandboxes) and follow a rename after `sysmonctl reopen`; `sysmon -u`
stops and disables both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.packaging.debroot import DebianRoot
from tests.packaging.test_deb import build

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.bpf, pytest.mark.timeout(1200)]

UNITS = ("sysmon-collector.service", "sysmon-filterd.service")
ONLY_SLEEP = """<Sysmon schemaversion="4.90">
  <EventFiltering>
    <ProcessCreate onmatch="include">
      <Image condition="end with">/sleep</Image>
    </ProcessCreate>
    <ProcessTerminate onmatch="include"/>
  </EventFiltering>
</Sysmon>
"""
SELFTEST = """
import socket, time
deadline = time.monotonic() + 60
while True:  # a restarted filterd makes its control socket a moment after systemd started it
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect("/run/sysmon-filterd/control.sock")
        break
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
s.sendall(b'{"cmd": "selftest"}\\n')
print(s.makefile("rb").readline().decode())
"""
UNIT_ONLY = """[Service]
ExecStart=
ExecStart=/usr/bin/python3 -P -m filterd --no-sandbox --endpoint ipc:///run/sysmon/collector.sock \\
  --config /opt/sysmon/config.xml --state-dir /var/lib/sysmon --syslog-socket /dev/log
"""
NO_INET = {f"{f}_{k}": "EAFNOSUPPORT" for f in ("inet", "inet6") for k in ("udp", "tcp")}
# The reload target: different rules, still quiet (journald rate-limits a chatty unit).
SLEEP_AND_TRUE = ONLY_SLEEP.replace(
    "</ProcessCreate>", '  <Image condition="end with">/true</Image>\n    </ProcessCreate>'
)


# nspawn's own allow-list lacks these: BPF for the collector, Landlock for filterd's self-sandbox
SYSCALLS = "bpf perf_event_open landlock_create_ruleset landlock_add_rule landlock_restrict_self"


class Container:
    """`systemd-nspawn -b` on a root directory; commands enter it with nsenter."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1 = 0
        self.log = root.parent / "nspawn.log"

    def start(self) -> None:
        kernel = os.uname().release
        binds = ["/lib/modules", "/usr/src", "/sys/kernel/tracing", "/sys/kernel/btf"]
        assert Path(f"/lib/modules/{kernel}/build").exists(), "no kernel headers (scripts/setup.sh install)"
        cmd = ["systemd-nspawn", "-D", str(self.root), "-b", "--register=no", "--keep-unit",
               "--console=pipe", "--capability=all", f"--system-call-filter={SYSCALLS}",
               "-M", f"sysmon-{uuid.uuid4().hex[:8]}", *(f"--bind-ro={b}" for b in binds)]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"nspawn exited: {self.log.read_text(errors='replace')[-3000:]}"
            self.pid1 = self._find_systemd(self.proc.pid)
            if self.pid1 and self.run("systemctl", "is-system-running", check=False).stdout.strip() in (
                "running", "degraded"):  # fmt: skip
                return
            time.sleep(0.5)
        raise TimeoutError(f"container did not boot: {self.log.read_text(errors='replace')[-3000:]}")

    @staticmethod
    def _find_systemd(pid: int) -> int:
        """The container's PID 1: the first descendant of nspawn named systemd."""
        todo = [pid]
        while todo:
            p = todo.pop(0)
            try:
                children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
            except OSError:
                continue
            for c in map(int, children):
                try:
                    if Path(f"/proc/{c}/comm").read_text().strip() == "systemd":
                        return c
                except OSError:
                    continue
                todo.append(c)
        return 0

    def run(self, *cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        full = [
            "nsenter",
            "-t",
            str(self.pid1),
            "-a",
            "env",
            "-i",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            *cmd,
        ]
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"{cmd} exited {p.returncode}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
        return p

    def journal(self) -> list[str]:
        return self.run("journalctl", "-t", "sysmon", "-o", "cat", "--no-pager").stdout.splitlines()

    def wait_journal(self, pred, timeout: float = 60) -> list[str]:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = self.journal()
            if pred(lines):
                return lines
            time.sleep(0.5)
        units = self.run("journalctl", "-u", UNITS[0], "-u", UNITS[1], "--no-pager", check=False).stdout
        tail = "\n".join(ln[:400] for ln in self.journal()[-6:])
        raise TimeoutError(f"journal condition not met; unit logs:\n{units[-3000:]}\nsysmon lines:\n{tail}")

    def marker(self, exe: str, timeout: float = 180) -> None:
        """Run `exe <tag>` until its ProcessCreate is in the journal (the collector may still be
        compiling its programs: filterd logs Started before it has heard from the collector)."""
        tag = f"nspawn-{uuid.uuid4().hex[:10]}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.run(exe, "0", tag, check=False)
            if any(tag in ln and "<EventID>1</EventID>" in ln for ln in self.journal()):
                return
            time.sleep(1.0)
        raise TimeoutError(f"no ProcessCreate of {exe} {tag}: {[ln[:300] for ln in self.journal()[-4:]]}")

    def selftest(self) -> dict:
        return json.loads(self.run("python3", "-I", "-c", SELFTEST).stdout)

    def wait_for(self, cond, what: str, timeout: float = 120) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not cond():
            assert time.monotonic() < deadline, what
            time.sleep(0.5)

    def show(self, unit: str, prop: str) -> str:
        return self.run("systemctl", "show", "-p", prop, "--value", unit).stdout.strip()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to halt
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_units_under_systemd(tmp_path: Path) -> None:
    deb_file = build("0.1.0", tmp_path)
    with DebianRoot() as deb:
        deb.run("apt-get", "update", "-q")
        deb.put(deb_file, "/tmp/sysmon.deb")
        packages = ("systemd", "systemd-sysv", "dbus", "/tmp/sysmon.deb")
        deb.run("apt-get", "install", "-y", "-q", "--no-install-recommends", *packages, timeout=900)
        # not /tmp: nspawn mounts a tmpfs there
        (deb.root / "root/only-sleep.xml").write_text(ONLY_SLEEP)
        (deb.root / "root/sleep-and-true.xml").write_text(SLEEP_AND_TRUE)
        (deb.root / "opt/sysmon/outputs").write_text("json /var/log/sysmon/sysmon.json\n")
        # the collector sees the whole host: keep journald from rate-limiting the test's events
        conf = deb.root / "etc/systemd/journald.conf.d"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "no-ratelimit.conf").write_text("[Journal]\nRateLimitBurst=0\n")
        deb.unmount_helpers()
        box = Container(deb.root)
        try:
            box.start()
            r = box.run("sysmon", "-accepteula", "-i", "/root/only-sleep.xml")
            assert "Sysmon started." in r.stdout
            assert box.run("systemctl", "is-enabled", *UNITS).stdout.split() == ["enabled", "enabled"]
            box.wait_journal(
                lambda ls: any("<EventID>4</EventID>" in ln and ">Started<" in ln for ln in ls), 300
            )
            assert box.run("systemctl", "is-active", *UNITS).stdout.split() == ["active", "active"]
            assert box.show(UNITS[1], "User") == "sysmon"

            box.marker("/usr/bin/sleep")

            # JSON lines (the outputs file), renamed and reopened as logrotate would
            json_file = deb.root / "var/log/sysmon/sysmon.json"

            def json_ids() -> set[int]:
                text = json_file.read_text() if json_file.exists() else ""
                return {json.loads(ln)["System"]["EventID"] for ln in text.splitlines()}

            box.wait_for(lambda: json_ids() >= {1, 4, 16}, "JSON lines in /var/log/sysmon")
            json_file.rename(json_file.with_suffix(".json.1"))
            assert box.run("sysmonctl", "reopen").stdout.strip() == "reopened /var/log/sysmon/sysmon.json"
            box.marker("/usr/bin/sleep")
            box.wait_for(lambda: 1 in json_ids(), "JSON lines in the reopened file")

            # filterd's sandbox: its own (Landlock, seccomp) inside the unit's
            r = box.selftest()
            assert r["sandbox"].startswith("landlock ABI") and "seccomp (unix only)" in r["sandbox"], r
            assert r["write_state"] == "ok" and "ok" not in r["write_outside"].values(), r
            assert r["exec"] == r["exec_interpreter"] == r["execve"] == r["fork"] == "EPERM", r
            assert {k: r[k] for k in NO_INET} == NO_INET, r  # RestrictAddressFamilies= answers first
            # the unit's alone: no exec outside the interpreter, nothing writable, no internet
            dropin = deb.root / "etc/systemd/system/sysmon-filterd.service.d"
            dropin.mkdir(parents=True)
            (dropin / "unit-only.conf").write_text(UNIT_ONLY)
            box.run("systemctl", "daemon-reload")
            box.run("systemctl", "restart", UNITS[1])
            r = box.selftest()
            assert r["sandbox"] == "none" and r["write_state"] == "ok", r
            assert set(r["write_outside"].values()) == {"EROFS"}, r
            assert r["exec"] == r["execve"] == "EACCES", r  # NoExecPaths=/: /bin/true is on a noexec mount
            assert r["exec_interpreter"] == "ok", r  # ExecPaths= keeps python3: the self-sandbox closes that
            assert {k: r[k] for k in NO_INET} == NO_INET, r
            (dropin / "unit-only.conf").unlink()
            box.run("systemctl", "daemon-reload")
            box.run("systemctl", "restart", UNITS[1])
            assert box.selftest()["exec"] == "EPERM"

            # a hung collector: systemd's watchdog kills it and Restart= brings it back
            hung, restarts = box.show(UNITS[0], "MainPID"), int(box.show(UNITS[0], "NRestarts"))
            box.run("python3", "-c", f"import os, signal; os.kill({hung}, signal.SIGSTOP)")
            box.wait_for(lambda: int(box.show(UNITS[0], "NRestarts")) > restarts, "watchdog restart")
            box.wait_for(lambda: box.show(UNITS[0], "ActiveState") == "active", "collector active again", 300)
            assert box.show(UNITS[0], "MainPID") not in (hung, "0")
            log = box.run("journalctl", "-u", UNITS[0], "--no-pager").stdout
            assert "Watchdog timeout" in log, log[-2000:]
            box.marker("/usr/bin/sleep")  # events flow again

            pid, started = (
                box.show(UNITS[0], "MainPID"),
                box.show(UNITS[0], "ExecMainStartTimestampMonotonic"),
            )
            n16 = sum("<EventID>16</EventID>" in ln for ln in box.journal())
            r = box.run("sysmon", "-c", "/root/sleep-and-true.xml")
            assert "Configuration updated." in r.stdout
            box.wait_journal(lambda ls: sum("<EventID>16</EventID>" in ln for ln in ls) > n16)
            assert box.show(UNITS[0], "MainPID") == pid
            assert box.show(UNITS[0], "ExecMainStartTimestampMonotonic") == started
            box.marker("/usr/bin/true")  # logged under the new rules only

            r = box.run("sysmon", "-u")
            assert "Sysmon stopped." in r.stdout
            assert box.run("systemctl", "is-active", *UNITS, check=False).stdout.split() == ["inactive"] * 2
            assert box.run("systemctl", "is-enabled", *UNITS, check=False).stdout.split() == ["disabled"] * 2
        finally:
            box.stop()
