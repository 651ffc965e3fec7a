"""ImageHasher against real files an unprivileged user could put at an exec'd path.

Each test builds the PROCESS_EXEC record the kernel would have sent (identity from stat) for a
real file, then changes what is at the path: a FIFO, a symlink to a device, another file, a
file over the size limit, a hash that takes long. inotify proves what the collector opened
(an O_PATH descriptor runs no open code and sends no IN_OPEN; a real open does).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from collector import hashes
from collector.hashes import ImageHasher, kernel_dev
from shared import records
from shared.decode import decode, encode, split_path

TRUE = shutil.which("true") or "/usr/bin/true"
SLEEP = shutil.which("sleep") or "/usr/bin/sleep"
IN_OPEN, IN_ACCESS = 0x20, 0x01
SHA256 = frozenset({"SHA256"})


def exec_record(pid: int, path: str | Path, st: os.stat_result, flags: int = 0) -> bytes:
    """The PROCESS_EXEC the kernel sends for `pid` exec'ing the file whose stat is `st`."""
    return encode(
        records.PROCESS_EXEC,
        (split_path(str(path)), b"", b""),
        flags=flags,
        pid=pid,
        tid=pid,
        exe_ino=st.st_ino,
        exe_ctime=st.st_ctime_ns // 1_000_000_000,
        exe_dev=kernel_dev(st.st_dev),
    )


def image_hashes(out: list[bytes]) -> list[tuple[tuple[int, int, int], int, bytes]]:
    """(identity, algos, digests) of each IMAGE_HASH in `out`."""
    found = []
    for rec in out:
        spec, v, strings = decode(rec)
        if spec is records.IMAGE_HASH:
            f = {fl.name: x for fl, x in zip(spec.all_fields, v, strict=True)}
            found.append(((f["exe_dev"], f["exe_ino"], f["exe_ctime"]), f["algos"], strings[0]))
    return found


def key_of(st: os.stat_result) -> tuple[int, int, int]:
    return kernel_dev(st.st_dev), st.st_ino, st.st_ctime_ns // 1_000_000_000


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"no {what} after {timeout}s"
        time.sleep(0.01)


def settle(h: ImageHasher, counter: str, n: int = 1, batch: tuple[bytes, ...] = ()) -> list[bytes]:
    """Call records_for(batch) (the collector's later batches) until stats[counter] reaches n;
    returns everything those calls emitted."""
    out: list[bytes] = []

    def done() -> bool:
        out.extend(h.records_for(list(batch)))
        return h.stats[counter] >= n

    wait_for(done, f"stats[{counter!r}] >= {n}: {dict(h.stats)}")
    return out


def dead_pid(image: str = TRUE) -> int:
    p = subprocess.Popen([image])
    p.wait()
    return p.pid


class Inotify:
    """Which of the watched paths were opened or read (by anyone: the paths are private)."""

    def __init__(self, *paths: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0
        self.names = {}
        for p in paths:
            # IN_DONT_FOLLOW: watch a symlink itself, not what it points to
            wd = self.libc.inotify_add_watch(self.fd, os.fsencode(p), 0xFFF | 0x02000000)
            assert wd >= 0, p
            self.names[wd] = p

    def events(self) -> list[tuple[Path, int]]:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        out, pos = [], 0
        while pos < len(data):
            wd, mask, _, ln = struct.unpack_from("iIII", data, pos)
            out.append((self.names.get(wd, Path("?")), mask))
            pos += 16 + ln
        return out

    def opened(self) -> set[Path]:
        return {p for p, mask in self.events() if mask & (IN_OPEN | IN_ACCESS)}

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def hasher() -> Iterator[ImageHasher]:
    # A long wait: these tests are about which file gets hashed, not about time.
    h = ImageHasher(wait_s=30.0)
    h.want(SHA256)
    yield h
    h.close()


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A private copy of sleep: its identity is its own, and we may replace it."""
    p = tmp_path / "img"
    shutil.copy(SLEEP, p)
    return p


def test_running_image_is_hashed_once_per_identity(hasher: ImageHasher, image: Path) -> None:
    proc = subprocess.Popen([image, "60"])
    try:
        rec = exec_record(proc.pid, image, os.stat(image))
        out = hasher.records_for([rec, rec])
        [(key, algos, digests)] = image_hashes(out)
        assert out[1:] == [rec, rec]  # the hash goes before the first exec
        assert key == key_of(os.stat(image))
        assert algos == 4 and digests == hashlib.sha256(image.read_bytes()).digest()
        assert hasher.records_for([rec]) == [rec]
        hasher.forget_sent()  # a new subscriber: announced again, from the cache
        assert image_hashes(hasher.records_for([rec])) == [(key, 4, digests)]
        assert hasher.stats["hashed"] == 1 and hasher.failures == 0
    finally:
        proc.kill()
        proc.wait()


def test_every_algorithm_in_hash_order(image: Path) -> None:
    h = ImageHasher(wait_s=30.0)
    h.want(frozenset({"SHA256", "MD5", "SHA1"}))
    proc = subprocess.Popen([image, "60"])
    try:
        [(_, algos, digests)] = image_hashes(h.records_for([exec_record(proc.pid, image, os.stat(image))]))
        data = image.read_bytes()
        assert algos == 1 | 2 | 4
        assert (
            digests
            == hashlib.sha1(data).digest() + hashlib.md5(data).digest() + hashlib.sha256(data).digest()
        )
    finally:
        proc.kill()
        proc.wait()
        h.close()


def test_gone_process_is_hashed_by_path(hasher: ImageHasher, image: Path) -> None:
    pid = dead_pid(str(image))
    [(_, _, digests)] = image_hashes(hasher.records_for([exec_record(pid, image, os.stat(image))]))
    assert digests == hashlib.sha256(image.read_bytes()).digest()


def test_live_process_is_hashed_from_its_exe_after_the_path_is_replaced(
    hasher: ImageHasher, image: Path, tmp_path: Path
) -> None:
    original = image.read_bytes()
    proc = subprocess.Popen([image, "60"])
    try:
        rec = exec_record(proc.pid, image, os.stat(image))
        (tmp_path / "other").write_bytes(b"#!/bin/sh\nexit 0\n" + os.urandom(64))
        os.rename(tmp_path / "other", image)
        [(_, _, digests)] = image_hashes(hasher.records_for([rec]))
        assert digests == hashlib.sha256(original).digest()
    finally:
        proc.kill()
        proc.wait()


def test_replaced_file_of_a_gone_process_gets_no_hash(
    hasher: ImageHasher, image: Path, tmp_path: Path
) -> None:
    pid = dead_pid(str(image))
    rec = exec_record(pid, image, os.stat(image))
    shutil.copy(image, tmp_path / "other")  # same bytes, another inode: still not the exec'd file
    os.rename(tmp_path / "other", image)
    assert hasher.records_for([rec]) == [rec]
    assert hasher.stats["failed_identity"] == 1 and hasher.stats["hashed"] == 0


def test_file_changed_since_exec_gets_no_hash(hasher: ImageHasher, image: Path) -> None:
    """Same inode, but its ctime is not the one the kernel recorded (chmod, write after exec)."""
    st = os.stat(image)
    rec = encode(
        records.PROCESS_EXEC,
        (split_path(str(image)), b"", b""),
        pid=dead_pid(str(image)),
        exe_ino=st.st_ino,
        exe_ctime=st.st_ctime_ns // 1_000_000_000 - 1,
        exe_dev=kernel_dev(st.st_dev),
    )
    assert hasher.records_for([rec]) == [rec]
    assert hasher.stats["failed_identity"] == 1


def test_fifo_at_the_path_of_a_gone_process_is_never_opened(image: Path) -> None:
    h = ImageHasher()  # the collector's own wait bound
    h.want(SHA256)
    pid = dead_pid(str(image))
    rec = exec_record(pid, image, os.stat(image))
    image.unlink()
    os.mkfifo(image)  # an open for reading would wait for a writer forever
    watch = Inotify(image)
    try:
        assert h.records_for([rec]) == [rec]
        settle(h, "failed_not_regular")
        assert h.failures == 1 and not watch.opened()
    finally:
        watch.close()
        h.close()


@pytest.mark.parametrize("target", ["fifo", "chardev"])
def test_symlink_at_the_path_is_not_followed(
    hasher: ImageHasher, image: Path, tmp_path: Path, target: str
) -> None:
    pid = dead_pid(str(image))
    dest = tmp_path / target
    if target == "fifo":
        os.mkfifo(dest)
    else:
        os.mknod(dest, 0o600 | 0o020000, os.makedev(1, 5))  # a private /dev/zero node
    image.unlink()
    image.symlink_to(dest)
    # The record claims the target's own identity: only the refusal to follow saves us.
    rec = exec_record(pid, image, os.stat(dest))
    watch = Inotify(dest, image)
    try:
        assert hasher.records_for([rec]) == [rec]
        assert hasher.stats["failed_symlink"] == 1
        assert not watch.opened()
    finally:
        watch.close()


def test_symlink_in_a_directory_of_the_path_is_not_followed(
    hasher: ImageHasher, image: Path, tmp_path: Path
) -> None:
    pid = dead_pid(str(image))
    rec_path = tmp_path / "link" / "img"
    (tmp_path / "link").symlink_to(tmp_path)
    rec = exec_record(pid, rec_path, os.stat(image))
    assert hasher.records_for([rec]) == [rec]
    assert hasher.stats["failed_symlink"] == 1


@pytest.mark.parametrize("kind", ["fifo", "chardev"])
def test_special_file_at_the_path_is_not_opened(hasher: ImageHasher, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "special"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        os.mknod(path, 0o600 | 0o020000, os.makedev(1, 5))
    # Even with the identity right (inode, ctime, device), only a regular file is opened.
    rec = exec_record(dead_pid(), path, os.stat(path))
    watch = Inotify(path)
    try:
        assert hasher.records_for([rec]) == [rec]
        assert hasher.stats["failed_not_regular"] == 1
        assert not watch.opened()
    finally:
        watch.close()


def test_file_over_the_size_limit_is_not_read(image: Path, tmp_path: Path) -> None:
    h = ImageHasher(max_size=1000, wait_s=30.0)
    h.want(SHA256)
    sparse = tmp_path / "sparse"
    with open(sparse, "wb") as f:
        f.truncate(hashes.DEFAULT_MAX_SIZE + 1)  # 256 MiB of nothing: over the default limit too
    watch = Inotify(image, sparse)
    try:
        rec = exec_record(dead_pid(), image, os.stat(image))
        assert h.records_for([rec]) == [rec]
        assert h.stats["too_big"] == 1
        dflt = ImageHasher(wait_s=30.0)
        dflt.want(SHA256)
        rec = exec_record(dead_pid(), sparse, os.stat(sparse))
        assert dflt.records_for([rec]) == [rec]
        assert dflt.stats["too_big"] == 1 and dflt.failures == 1
        dflt.close()
        assert not watch.opened()
    finally:
        watch.close()
        h.close()


def test_snapshot_records_are_left_alone(hasher: ImageHasher, image: Path) -> None:
    rec = exec_record(os.getpid(), image, os.stat(image), flags=records.REC_F_SNAPSHOT)
    assert hasher.records_for([rec]) == [rec]
    assert not hasher.stats


def test_kernel_dev_encoding() -> None:
    assert kernel_dev(os.makedev(8, 1)) == (8 << 20) | 1
    assert kernel_dev(os.makedev(259, 0x12345)) == (259 << 20) | 0x12345


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Hold every worker in its read until `release` is set; `started` says one got there."""
    started, release = threading.Event(), threading.Event()
    real = hashes._digest_fd

    def slow(fd: int, algos: frozenset[str], limit: int) -> bytes | None:
        started.set()
        release.wait()
        return real(fd, algos, limit)

    monkeypatch.setattr(hashes, "_digest_fd", slow)
    yield started, release
    release.set()


def test_slow_hash_goes_out_with_a_later_batch(
    held: tuple[threading.Event, threading.Event], image: Path
) -> None:
    started, release = held
    h = ImageHasher()  # the collector's own wait bound
    h.want(SHA256)
    proc = subprocess.Popen([image, "60"])
    try:
        rec = exec_record(proc.pid, image, os.stat(image))
        out = h.records_for([rec])
        # records_for came back while the worker is still held in its read
        assert out == [rec] and started.is_set() and not release.is_set()
        assert h.stats["late"] == 1
        release.set()
        later: list[list[bytes]] = []
        marker = encode(records.MARKER, token=1)

        def emitted() -> bool:
            out = h.records_for([marker])
            if image_hashes(out):
                later.append(out)
            return bool(later)

        wait_for(emitted, "the late IMAGE_HASH")
        [(key, _, digests)] = image_hashes(later[0])
        assert key == key_of(os.stat(image)) and digests == hashlib.sha256(image.read_bytes()).digest()
        assert later[0][1:] == [marker]  # before the later batch's own records
        assert h.records_for([rec]) == [rec]  # announced once
        assert h.stats["hashed"] == 1
    finally:
        proc.kill()
        proc.wait()
        h.close()


def test_stuck_worker_refuses_jobs_over_the_bound(
    held: tuple[threading.Event, threading.Event], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = held
    monkeypatch.setattr(hashes, "STUCK_S", 0.0)  # a held worker counts as stuck at once
    h = ImageHasher(workers=1, queue_max=2)
    h.want(SHA256)
    try:
        recs = []
        for i in range(10):
            p = tmp_path / f"img{i}"
            p.write_bytes(os.urandom(64))
            recs.append(exec_record(dead_pid(), p, os.stat(p)))
        assert h.records_for(recs[:1]) == recs[:1]
        wait_for(started.is_set, "worker in its read")
        for _ in range(3):  # a stuck worker costs no wait and no memory, batch after batch
            assert h.records_for(recs[1:]) == recs[1:]
        assert h.stats["refused"] == 3 * 7 and len(h._pending) == 3
        release.set()
        out = settle(h, "hashed", 3)
        assert len(image_hashes(out)) == 3  # the three accepted jobs, late
        out = settle(h, "hashed", 10, tuple(recs[3:]))  # the refused ones: at their next execs
        assert len(image_hashes(out)) == 7
    finally:
        h.close()


def test_changing_algorithms_drops_older_results(image: Path) -> None:
    h = ImageHasher(wait_s=30.0)
    h.want(SHA256)
    rec = exec_record(dead_pid(str(image)), image, os.stat(image))
    try:
        assert image_hashes(h.records_for([rec]))[0][1] == 4
        h.want(frozenset({"MD5"}))
        [(_, algos, digests)] = image_hashes(h.records_for([rec]))
        assert algos == 2 and digests == hashlib.md5(image.read_bytes()).digest()
    finally:
        h.close()


STALLED_FUSE = """
import ctypes, json, os, subprocess, sys, time
from collector.hashes import ImageHasher, _mounts
from shared import records
from shared.decode import encode, split_path

libc = ctypes.CDLL(None, use_errno=True)
assert libc.unshare(0x00020000) == 0, "unshare(CLONE_NEWNS)"  # our mounts stay in this process
assert libc.mount(b"none", b"/", None, (1 << 18) | 16384, None) == 0, "make / rprivate"
mnt = sys.argv[1]
fuse = os.open("/dev/fuse", os.O_RDWR)  # never read: every request on the mount waits forever
opts = f"fd={fuse},rootmode=40000,user_id=0,group_id=0".encode()
assert libc.mount(b"stalled", mnt.encode(), b"fuse", 0, opts) == 0, ctypes.get_errno()
[dev] = [d for _, d, t in _mounts(None) if t == "fuse"]  # from mountinfo: never touches the mount
p = subprocess.Popen(["true"])
p.wait()
rec = encode(records.PROCESS_EXEC, (split_path(mnt + "/img"), b"", b""), pid=p.pid, exe_ino=2, exe_dev=dev)
h = ImageHasher(workers=1)
h.want(frozenset({"SHA256"}))
h.records_for([rec])
deadline = time.monotonic() + 20
while not h.failures and time.monotonic() < deadline:
    time.sleep(0.01)
    h.records_for([])
print(json.dumps(h.stats))
os.close(fuse)  # aborts the connection: a request stuck on it fails, the worker is free again
"""


def test_image_on_a_stalled_fuse_mount_is_not_touched(tmp_path: Path) -> None:
    """A FUSE daemon that never answers: the worker must not look the path up at all."""
    mnt = tmp_path / "fuse"
    mnt.mkdir()
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", STALLED_FUSE, str(mnt)],
        env=dict(os.environ, PYTHONPATH=str(root)),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(out.stdout) == {"failed_untrusted_fs": 1}


def test_live_process_on_an_untrusted_fs_is_not_touched(
    hasher: ImageHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/proc/<pid>/exe: the mount type comes from mountinfo, before any stat of the file. tmpfs
    stands for FUSE here (a working FUSE server is more than this test needs)."""
    monkeypatch.setattr(hashes, "UNTRUSTED_FS", ("tmpfs",))
    path = Path(f"/dev/shm/sysmon-test-img-{os.getpid()}")
    shutil.copy(SLEEP, path)
    proc = subprocess.Popen([path, "60"])
    watch = Inotify(path)
    try:
        rec = exec_record(proc.pid, path, os.stat(path))
        assert hasher.records_for([rec]) == [rec]
        assert hasher.stats["failed_untrusted_fs"] == 1 and not watch.opened()
    finally:
        watch.close()
        proc.kill()
        proc.wait()
        path.unlink()


def delete_record(pid: int, path: Path, st: os.stat_result | None, relative: bool = False) -> bytes:
    """The FILE_DELETE the kernel sends after `pid` unlinked `path` (st: the inode after it)."""
    name, base = (path.name.encode(), split_path(str(path.parent))) if relative else (bytes(path), b"")
    ident = {}
    if st is not None:
        ident = dict(ino=st.st_ino, ctime=st.st_ctime_ns // 10**9, dev=kernel_dev(st.st_dev), mode=st.st_mode)
    return encode(records.FILE_DELETE, (name, base), pid=pid, tid=pid, dirfd=-100, **ident)


@pytest.mark.parametrize("relative", [False, True])
def test_deleted_file_still_running_is_hashed_through_its_process(
    hasher: ImageHasher, image: Path, relative: bool
) -> None:
    hasher.deleted = True  # a filterd logs FileDeleteDetected (want/d)
    proc = subprocess.Popen([image, "60"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe") == str(image), "exec")
        image.unlink()
        st = os.stat(f"/proc/{proc.pid}/exe")
        rec = delete_record(dead_pid(), image, st, relative)  # deleted by another process
        out = hasher.records_for([rec])
        [(key, algos, digests)] = image_hashes(out)
        assert out[1:] == [rec] and key == key_of(st)
        assert digests == hashlib.sha256(Path(SLEEP).read_bytes()).digest()
    finally:
        proc.kill()
        proc.wait()


def test_deleted_file_nobody_runs_gets_no_hash_and_a_reason(hasher: ImageHasher, tmp_path: Path) -> None:
    hasher.deleted = True
    text = tmp_path / "note.txt"
    text.write_text("x")
    st = os.stat(text)
    text.unlink()
    rec = delete_record(os.getpid(), text, st)
    assert hasher.records_for([rec]) == [rec]
    assert hasher.stats["deleted_not_executable"] == 1
    exe = tmp_path / "prog"
    shutil.copy(SLEEP, exe)
    st = os.stat(exe)
    exe.unlink()
    rec = delete_record(dead_pid(), exe, st)
    assert hasher.records_for([rec]) == [rec]
    assert hasher.stats["failed_gone"] == 1


def test_deleted_files_leave_half_the_queue_to_exec_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of deleted executables (each a new identity) cannot starve ProcessCreate's hashes."""
    h = ImageHasher(wait_s=0.0, workers=1, queue_max=4)
    h.want(SHA256)
    h.deleted = True
    stop, started = threading.Event(), threading.Event()
    real_run = hashes._run

    def slow_run(job: hashes._Job, limit: int) -> None:
        started.set()
        stop.wait(30)
        real_run(job, limit)

    monkeypatch.setattr(hashes, "_run", slow_run)
    exe = tmp_path / "prog"
    shutil.copy(SLEEP, exe)
    st = os.stat(exe)
    recs = [
        encode(records.FILE_DELETE, (b"/x%d" % i, b""), pid=1, ino=i + 1, ctime=1, dev=1, mode=0o100755)
        for i in range(8)
    ]
    proc = subprocess.Popen([exe, "60"])
    try:
        h.records_for(recs[:1])
        wait_for(started.is_set, "the worker busy")
        h.records_for(recs[1:])
        assert h.stats["deleted_busy"] == 5  # 2 queued (half of 4), the rest turned away
        h.records_for([exec_record(proc.pid, exe, st)])
        assert h.stats["refused"] == 0  # the exec's job still found room
    finally:
        proc.kill()
        proc.wait()
        stop.set()
        h.close()


def test_deleted_files_are_left_alone_unless_asked_for(hasher: ImageHasher, image: Path) -> None:
    """FileDelete (23) alone wants no hashes: no job, no counter, not even for a running image."""
    proc = subprocess.Popen([image, "60"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{proc.pid}/exe") == str(image), "exec")
        image.unlink()
        rec = delete_record(proc.pid, image, os.stat(f"/proc/{proc.pid}/exe"))
        assert hasher.records_for([rec]) == [rec]
        assert not hasher.stats and not hasher._pending
    finally:
        proc.kill()
        proc.wait()
