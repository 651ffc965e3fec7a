"""sysmonctl/replay.py: a recording replayed through the real pipeline with different configs:
exactly what each config includes, rule hits, and every reason the answer may be incomplete."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from filterd.recording import NOTE, STATE, frame_entry, json_entry
from shared import envelope, records
from shared.decode import encode, split_path
from sysmonctl.record import Writer
from sysmonctl.replay import replay
from tests.harness.sysmon_json import differences, expected

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "3d1219c7aa0000000000000000000000/boot"
T0 = 1_800_000_000 * 10**9  # arrival times (ns)
HOST = {
    "hostname": "h1",
    "machine_id": "3d1219c7aa0000000000000000000000",
    "boot_epoch_ns": 1_700_000_000 * 10**9,
    "users": {0: "root", 1000: "alice"},
    "logins": [],
    "collector_pid": 42,
    "counters": {"kernel_dropped": {1: 5}},
}
MARKERS = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><ProcessCreate onmatch="include">
  <CommandLine name="markers" condition="contains">marker</CommandLine></ProcessCreate></RuleGroup>
<ProcessTerminate onmatch="include"/>
</EventFiltering></Sysmon>"""
FILES = """<Sysmon schemaversion="4.90"><EventFiltering>
<RuleGroup groupRelation="or"><FileCreate onmatch="include">
  <TargetFilename name="tmp-files" condition="begin with">/tmp/</TargetFilename></FileCreate></RuleGroup>
<ProcessCreate onmatch="include"/><ProcessTerminate onmatch="include"/>
</EventFiltering></Sysmon>"""
NETWORK = """<Sysmon schemaversion="4.90"><HashAlgorithms>MD5,SHA256</HashAlgorithms><EventFiltering>
<NetworkConnect onmatch="exclude"/><ProcessCreate onmatch="exclude"/>
</EventFiltering></Sysmon>"""


def exec_rec(pid: int, args: bytes, start: int) -> bytes:
    return encode(
        records.PROCESS_EXEC,
        (split_path("/usr/bin/true"), split_path("/"), args),
        pid=pid,
        tid=pid,
        ppid=1,
        uid=1000,
        start_ns=start,
        end_code=0x4000 + pid,
        time_ns=start,
        flags=records.REC_F_NO_TTY,
        exe_dev=8,
        exe_ino=77,
        exe_ctime=1,
    )


def create_rec(pid: int, path: str) -> bytes:
    return encode(records.FILE_CREATE, (split_path(path),), pid=pid, tid=pid, uid=1000, fd=3, time_ns=1)


class Rec:
    """A recording made the way sysmonctl record makes one, from frames built here."""

    def __init__(self, path: Path) -> None:
        head = {"filterd": "test", "config": "live", "kinds": [1, 2, 3, 4], "hashes": ["SHA256"]}
        self.w = Writer(path, head, max_bytes=1 << 30, keep=3)
        self.seq = self.first = 0
        self.t = T0
        self.state()

    def state(self) -> None:
        self.w.write(json_entry(NOTE, {"note": "state", "origins": {ORIGIN: {"kind_drops": {"1": 5}}}}))
        self.w.write(frame_entry(STATE, self.t, b"host", envelope.pack_host(ORIGIN, HOST)))

    def batch(self, recs: list[bytes], numbered: int | None = None) -> None:
        self.t += 10**7
        body = envelope.pack_batch(ORIGIN, self.seq, b"".join(recs), 0, 1, self.first)
        self.w.write(frame_entry(2, self.t, b"rec", body))
        self.seq += 1
        self.first += len(recs) if numbered is None else numbered

    def host(self, **ctx: object) -> None:
        self.t += 10**7
        self.w.write(frame_entry(2, self.t, b"host", envelope.pack_host(ORIGIN, {**HOST, **ctx})))

    def close(self, end: bool = True) -> None:
        if end:
            self.w.write(json_entry(NOTE, {"note": "end", "lost": 0}))
        self.w.close()


def workload(path: Path) -> Rec:
    r = Rec(path)
    r.batch([encode(records.IMAGE_HASH, (bytes(range(32)),), exe_dev=8, exe_ino=77, exe_ctime=1, algos=4)], 0)
    r.batch([exec_rec(100 + i, b"marker-%d\0x\0" % i, (100 + i) * 10**9) for i in range(5)])
    r.batch([exec_rec(200, b"other\0", 200 * 10**9), create_rec(200, "/tmp/a"), create_rec(200, "/var/b")])
    r.host()  # heartbeat, nothing new
    r.batch([create_rec(201, "/tmp/c")])
    return r


def run(path: Path, config: str | None, tmp: Path, fmt: str = "xml") -> tuple[int, str, str]:
    cfg = None
    if config is not None:
        cfg = tmp / "config.xml"
        cfg.write_text(config)
    out, err = io.BytesIO(), io.StringIO()
    rc = replay(str(path), str(cfg) if cfg else None, fmt, out, err)
    return rc, out.getvalue().decode(), err.getvalue()


def data(xml: str, name: str) -> str:
    m = re.search(f'<Data Name="{name}">([^<]*)</Data>', xml)
    return m.group(1) if m else ""


def test_two_configs_two_answers(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    workload(path).close()
    rc, out, err = run(path, MARKERS, tmp_path)
    assert rc == 0 and "warning" not in err, err
    lines = out.splitlines()
    assert [data(x, "CommandLine") for x in lines] == [f"marker-{i} x" for i in range(5)]
    assert all(data(x, "Hashes") == "SHA256=" + bytes(range(32)).hex() for x in lines)
    assert all(data(x, "RuleName") == "markers" and "<Computer>h1</Computer>" in x for x in lines)
    assert re.search(r"\n\s+5  markers\n", err) and "ProcessCreate (1): 5 included, 1 excluded" in err
    assert "1 file(s), 5 frames over 0.1 s" in err  # 4 batches, 1 heartbeat; the state aside

    rc, out, err = run(path, FILES, tmp_path)
    assert rc == 0 and "warning" not in err, err
    assert [data(x, "TargetFilename") for x in out.splitlines()] == ["/tmp/a", "/tmp/c"]
    assert re.search(r"\n\s+2  tmp-files\n", err) and "FileCreate (11): 2 included, 1 excluded" in err

    rc, out, err = run(path, MARKERS, tmp_path, "json")
    assert rc == 0
    objs = [json.loads(x) for x in out.splitlines()]
    xml = run(path, MARKERS, tmp_path)[1].splitlines()
    assert len(objs) == 5
    for o, x in zip(objs, xml, strict=True):
        assert [d for d in differences(o, expected(x)) if "TimeCreated" not in d] == []


def test_default_config_and_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    workload(path).close()
    rc, out, err = run(path, None, tmp_path)
    assert rc == 0 and len(out.splitlines()) == 6  # the built-in config logs every ProcessCreate
    assert "config (built-in)" in err
    r = subprocess.run([sys.executable, "-m", "sysmonctl", "replay", str(path), "--format", "json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 6, r.stderr
    r = subprocess.run([sys.executable, "-m", "sysmonctl", "replay", str(tmp_path / "none.gz")],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert r.returncode == 2 and "no such recording" in r.stderr


def test_incomplete_recordings_say_so(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    r = workload(path)
    r.w.write(json_entry(NOTE, {"note": "lost", "frames": 3}))
    r.first += 4  # the 4 records in those frames never reach the replay
    r.seq += 3
    r.batch([exec_rec(300, b"marker-late\0", 300 * 10**9)])
    r.host(counters={"kernel_dropped": {1: 7}})  # 2 more kernel drops during the recording
    r.close(end=False)
    rc, out, err = run(path, MARKERS, tmp_path)
    assert rc == 0 and len(out.splitlines()) == 6
    assert "filterd dropped 3 frames for the recorder" in err
    assert "the kernel ring buffer of h1 dropped 2 records (PROCESS_EXEC 2)" in err  # not the 5 from before
    assert "4 records from h1 lost in transit (3 batches missing)" in err
    assert "no end mark" in err


def test_what_the_recording_cannot_answer(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    workload(path).close()
    rc, out, err = run(path, NETWORK, tmp_path)
    assert rc == 0
    assert "config logs event(s) [3] but the recording has no NET_CONNECT records" in err
    assert "record with --events 3" in err
    assert "Hashes lack MD5: the recording has SHA256" in err


def test_damage_stops_the_replay_with_file_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    r = workload(path)
    r.w.sync()
    size = path.stat().st_size
    r.batch([exec_rec(400, b"marker-lost\0", 400 * 10**9)])
    r.close()
    path.write_bytes(path.read_bytes()[:size])  # cut after the last flush of the workload
    rc, out, err = run(path, MARKERS, tmp_path)
    assert rc == 1 and len(out.splitlines()) == 5  # everything before the cut
    assert f"{path}: cut short at byte {size}" in err and "the events before that point were replayed" in err
    bad = "<Sysmon schemaversion='4.90'><EventFiltering><ProcessCreate onmatch='include'><Image "
    rc, out, err = run(
        path, bad + "condition='sounds like'>x</Image></ProcessCreate></EventFiltering></Sysmon>", tmp_path
    )
    assert rc == 2 and out == "" and "config.xml" in err


def test_rotated_parts_are_replayed_oldest_first(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    r = workload(path)
    r.w.rotate()  # as the recorder does, with a fresh state group
    r.state()
    r.batch([exec_rec(500, b"marker-second-part\0", 500 * 10**9)])
    r.close()
    rc, out, err = run(path, MARKERS, tmp_path)
    assert rc == 0, err
    assert [data(x, "CommandLine") for x in out.splitlines()][-1] == "marker-second-part"
    assert "2 file(s)" in err


@pytest.mark.parametrize("fmt", ["xml", "json"])
def test_a_closed_stdout_stops_printing_not_the_replay(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "r.gz"
    workload(path).close()
    p = subprocess.run(f"{sys.executable} -m sysmonctl replay {path} --format {fmt} | head -1",
                       shell=True, capture_output=True, text=True, cwd=ROOT, timeout=60)  # fmt: skip
    assert len(p.stdout.splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr


def test_a_part_without_host_context_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "r.gz"
    w = Writer(path, {"kinds": [1, 2, 3]}, max_bytes=1 << 30, keep=0)
    w.write(frame_entry(2, T0, b"rec", envelope.pack_batch(ORIGIN, 0, exec_rec(1, b"marker\0", 10**9))))
    w.close()
    rc, out, err = run(path, MARKERS, tmp_path)
    assert rc == 0 and out == ""
    assert "1 batch(es) of 1 origin(s) never got their host context" in err
