"""Image hashes for ProcessCreate (and FileDeleteDetected), computed where the file is: on the
collector's host.

Why here: a filterd on another host cannot open this host's files. Only the algorithms some
filterd subscribed to (b"want/h/SHA256") are computed. The kernel tells each exec's image
identity (device, inode, ctime); an image is hashed and announced (IMAGE_HASH) once per
identity, so 2000 execs of /bin/true cost one hash and no system call for the other 1999.

Whoever runs a program also decides what sits at its path by the time we look: a FIFO (a
root open for reading would wait forever for a writer), a symlink to a device, a huge sparse
file. So nothing is opened for reading before it is proven to be the exec'd file:
* an O_PATH descriptor is taken of /proc/<pid>/exe (the exact file object) or, once the
  process is gone, of the path resolved without following any symlink (openat2
  RESOLVE_NO_SYMLINKS); O_PATH runs none of the file's open code: no FIFO wait, no device open;
* its mount, from /proc and not from the file system: not FUSE (a user can mount one in a
  user namespace, and its daemon can leave any stat or read waiting forever), and the device
  the kernel recorded;
* fstat on it: a regular file with the inode and ctime the kernel recorded, not above the
  size limit; only then is it reopened for reading through /proc/self/fd (the same file
  object), non-blocking and without taking a controlling terminal.
A deleted file (FileDeleteDetected) can only be read while some process still runs it as its
image: the deleter's own /proc/<pid>/exe is tried, then the process whose exe link reads
"<path> (deleted)" (readlink only, at most _MAX_PROC_SCAN entries), with the same checks.
All of it runs in a small worker pool with a bounded job queue, never in the collector's
loop: records_for() waits at most `wait_s` per call. A hash not ready by then goes out with a
later batch (filterd caches hashes by image identity, so the next exec of the image has it).
A worker stuck for good (a hung file system) costs its thread and queue slots, never the loop
or unbounded memory: jobs over the bound are refused and counted.
"""

from __future__ import annotations

import ctypes
import errno
import os
import queue
import re
import stat
import struct
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator

from shared import records
from shared.decode import field_index, join_path
from shared.digest import new_hash

DEFAULT_MAX_SIZE = 256 << 20  # bytes; a larger image gets no hash (stats "too_big")
DEFAULT_WAIT_S = 0.05  # longest records_for() waits for new hashes, per call
DEFAULT_WORKERS = 2
DEFAULT_QUEUE = 256  # jobs waiting for a worker; more are refused (stats "refused")
STUCK_S = 1.0  # a worker on one job for longer is not waited for
_MAX_CACHE = 4096
_CHUNK = 1 << 20

# Why a hash is missing (stats "failed_<reason>"): a fixed set, never file names.
FAIL_REASONS = (
    "gone",  # no /proc/<pid>/exe, nothing at the path
    "symlink",  # a symlink in the path
    "unknown_mount",  # the file's mount is in no mountinfo we can read
    "untrusted_fs",  # UNTRUSTED_FS
    "not_regular",  # FIFO, device, directory...
    "identity",  # not the device, inode and ctime the kernel recorded
    "open_error",
    "read_error",
    "changed",  # changed while we read it
    "error",  # a bug: the worker survived it
)

_HASH_FIELDS = [f.name for f in records.IMAGE_HASH.all_fields]
_EXEC = struct.Struct(records.PROCESS_EXEC.fmt)
_EXEC_KIND = records.PROCESS_EXEC.kind
_FLAGS, _PID, _INO, _CTIME, _DEV, _EXE_LEN = (
    field_index(records.PROCESS_EXEC, n)
    for n in ("flags", "pid", "exe_ino", "exe_ctime", "exe_dev", "exe_len")
)
_DELETE = struct.Struct(records.FILE_DELETE.fmt)
_DELETE_KIND = records.FILE_DELETE.kind
_D_PID, _D_FLAGS, _D_INO, _D_CTIME, _D_DEV, _D_MODE, _D_NAME_LEN, _D_BASE_LEN = (
    field_index(records.FILE_DELETE, n)
    for n in ("pid", "flags", "ino", "ctime", "dev", "mode", "name_len", "base_len")
)
_MAX_PROC_SCAN = 4096  # processes looked at for the one still running a deleted file
_HASH_STRUCT = struct.Struct(records.IMAGE_HASH.fmt)
_SKIP_FLAGS = records.REC_F_SNAPSHOT  # /proc snapshot: no identity, and never a ProcessCreate

_SYS_OPENAT2 = 437  # same number on every architecture (generic syscall table)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_AT_FDCWD = -100
_O_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Mount types (prefixes) whose files answer through an unprivileged user's daemon (FUSE is
# mountable in a user namespace): never stat'ed nor read, a stalled daemon would hold a worker.
UNTRUSTED_FS: tuple[str, ...] = ("fuse",)
_MNT_ID = re.compile(rb"^mnt_id:\s*(\d+)", re.M)

Key = tuple[int, int, int]  # (kernel dev_t, inode, ctime seconds), as in PROCESS_EXEC


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_have_openat2 = True


def kernel_dev(st_dev: int) -> int:
    """stat()'s st_dev in the kernel's internal dev_t encoding (major << 20 | minor), which is
    what the BPF program reads from super_block->s_dev."""
    return (os.major(st_dev) << 20) | os.minor(st_dev)


def _open_path_nofollow(path: bytes) -> int:
    """O_PATH descriptor of `path`, refusing a symlink in any component (ELOOP)."""
    global _have_openat2
    flags = os.O_PATH | os.O_CLOEXEC
    if _have_openat2:
        how = _OpenHow(flags, 0, _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(_AT_FDCWD),
            ctypes.c_char_p(path),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err != errno.ENOSYS:
            raise OSError(err, os.strerror(err))
        _have_openat2 = False  # kernel before 5.6: only the last component is checked
    return os.open(path, flags | os.O_NOFOLLOW)


def _mounts(pid: int | None) -> list[tuple[bytes, int, str]]:
    """(mount id, super block dev_t in the kernel's encoding, fs type) of each mount in the
    mount namespace of `pid` (None: ours). mountinfo shows sb->s_dev, the very field the BPF
    program recorded (stat's st_dev is another one on btrfs and overlayfs)."""
    try:
        with open(f"/proc/{'self' if pid is None else pid}/mountinfo", "rb") as f:
            data = f.read()
    except OSError:
        return []
    out = []
    for line in data.splitlines():
        fields = line.split(b" ")  # spaces inside fields are escaped (\040)
        if b"-" in fields[6:]:
            major, _, minor = fields[2].partition(b":")
            fstype = fields[fields.index(b"-", 6) + 1].decode("ascii", "replace")
            out.append((fields[0], (int(major) << 20) | int(minor), fstype))
    return out


def _mount_of(fd: int, pid: int | None) -> tuple[int, str] | None:
    """(dev_t, fs type) of the mount `fd` is on, from /proc: fdinfo's mnt_id, looked up in the
    mountinfo of `pid`'s namespace, else ours. None of it calls into the file system, unlike
    fstat() or fstatfs(), which on FUSE wait for a daemon that may never answer."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            m = _MNT_ID.search(f.read())
    except OSError:
        return None
    if m is None:
        return None
    for ns in (pid, None) if pid is not None else (None,):
        for mnt_id, dev, fstype in _mounts(ns):
            if mnt_id == m[1]:
                return dev, fstype
    return None


def _path_refused(dev: int) -> str:
    """Why a path lookup in our namespace cannot reach the recorded image safely ("" if it can):
    no mount of that device here (another namespace's file), or one on FUSE (a lookup would
    wait for its daemon)."""
    types = [fstype for _, d, fstype in _mounts(None) if d == dev]
    if not types:
        return "unknown_mount"
    return "untrusted_fs" if any(t.startswith(UNTRUSTED_FS) for t in types) else ""


def _digest_fd(fd: int, algos: frozenset[str], limit: int) -> bytes | None:
    """Digests in HASH_ORDER of everything readable from `fd`, or None past `limit` bytes."""
    hs = [new_hash(name) for _, name, _ in records.HASH_ORDER if name in algos]
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    total = 0
    with open(fd, "rb", buffering=0, closefd=False) as f:
        while n := f.readinto(buf):
            total += n
            if total > limit:
                return None
            for h in hs:
                h.update(view[:n])
    return b"".join(h.digest() for h in hs)


class _Job:
    __slots__ = ("key", "pid", "path", "running", "algos", "gen", "digests", "why", "done")

    def __init__(
        self, key: Key, pid: int, path: bytes | None, algos: frozenset[str], gen: int, running: bytes | None
    ) -> None:
        self.key, self.pid, self.path, self.algos, self.gen = key, pid, path, algos, gen
        self.running = running  # a deleted file's former path: look for a process still running it
        self.digests: bytes | None = None
        self.why = ""  # failure reason, "" when hashed
        self.done = False


def _version(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


def _hash_verified(pfd: int, job: _Job, limit: int, pid: int | None) -> str:
    """Hash the file behind O_PATH descriptor `pfd` if it is the exec'd image; "" or a reason."""
    dev, ino, ctime = job.key
    mount = _mount_of(pfd, pid)
    if mount is None:
        return "unknown_mount"
    if mount[1].startswith(UNTRUSTED_FS):
        return "untrusted_fs"
    if mount[0] != dev:
        return "identity"
    st = os.fstat(pfd)
    if not stat.S_ISREG(st.st_mode):
        return "not_regular"
    if st.st_ino != ino or st.st_ctime_ns // 1_000_000_000 != ctime:
        return "identity"
    if st.st_size > limit:
        return "too_big"
    try:
        fd = os.open(f"/proc/self/fd/{pfd}", _O_READ)
    except OSError:
        return "open_error"
    try:
        st2 = os.fstat(fd)
        if (st2.st_dev, st2.st_ino) != (st.st_dev, st.st_ino):
            return "identity"
        try:
            digests = _digest_fd(fd, job.algos, limit)
        except OSError:
            return "read_error"
        if digests is None:
            return "too_big"  # grew while we read
        if _version(os.fstat(fd)) != _version(st):
            return "changed"
        job.digests = digests
        return ""
    finally:
        os.close(fd)


def _running_as(path: bytes) -> int | None:
    """A process whose image is the deleted file once at `path` (the kernel shows it as
    "<path> (deleted)"); readlink only, no file system is touched. The identity check that
    follows makes a wrong pick harmless."""
    want = path + b" (deleted)"
    try:
        with os.scandir(b"/proc") as it:
            for n, entry in enumerate(it):
                if n >= _MAX_PROC_SCAN:
                    return None
                if entry.name.isdigit():
                    try:
                        if os.readlink(b"/proc/" + entry.name + b"/exe") == want:
                            return int(entry.name)
                    except OSError:
                        continue
    except OSError:
        return None
    return None


def _candidates(job: _Job) -> Iterator[tuple[bool, bytes, int | None]]:
    """(is /proc/<pid>/exe, name, pid) to try in turn."""
    yield True, f"/proc/{job.pid}/exe".encode(), job.pid
    if job.path is not None:
        yield False, job.path, None
    if job.running is not None and (pid := _running_as(job.running)) not in (None, job.pid):
        yield True, f"/proc/{pid}/exe".encode(), pid


def _run(job: _Job, limit: int) -> None:
    why = "gone"
    for is_exe, name, pid in _candidates(job):
        if not is_exe and (refused := _path_refused(job.key[0])):
            why = refused
            continue
        try:
            # /proc/<pid>/exe is a magic link: followed on purpose, it is the file the kernel ran
            pfd = os.open(name, os.O_PATH | os.O_CLOEXEC) if is_exe else _open_path_nofollow(name)
        except OSError as e:
            if e.errno == errno.ELOOP:
                why = "symlink"
            elif e.errno in (errno.ENOENT, errno.ESRCH, errno.ENOTDIR):
                why = "gone"
            else:
                why = "open_error"
            continue
        try:
            why = _hash_verified(pfd, job, limit, pid)
        except OSError:
            why = "open_error"
        finally:
            os.close(pfd)
        if why in ("", "too_big"):
            break
    job.why = why


def _deleted_path(rec: bytes, v: tuple) -> bytes | None:
    """The unlinked name made absolute as filterd's TargetFilename is (None when truncated)."""
    if v[_D_FLAGS] & records.REC_F_PATH_TRUNC:
        return None
    start = _DELETE.size + v[_D_NAME_LEN]
    name = rec[_DELETE.size : start]
    if name.startswith(b"/"):
        return name
    return os.fsencode(join_path(rec[start : start + v[_D_BASE_LEN]])).rstrip(b"/") + b"/" + name


class ImageHasher:
    """IMAGE_HASH records for the execs of a batch, hashed off the caller's thread."""

    def __init__(
        self,
        max_size: int = DEFAULT_MAX_SIZE,
        wait_s: float = DEFAULT_WAIT_S,
        workers: int = DEFAULT_WORKERS,
        queue_max: int = DEFAULT_QUEUE,
    ) -> None:
        self.algos: frozenset[str] = frozenset()
        self.deleted = False  # hash deleted files still running (a filterd logs FileDeleteDetected)
        self.max_size = max_size
        self.wait_s = wait_s
        self.stats: Counter[str] = Counter()
        self._mask = 0
        self._gen = 0  # bumped when the algorithms change: older results are stale
        self._announced: OrderedDict[Key, None] = OrderedDict()  # sent since the last forget_sent()
        self._results: OrderedDict[Key, bytes | None] = OrderedDict()  # None: no hash possible
        self._pending: dict[Key, _Job] = {}
        self._late: dict[Key, None] = {}  # exec went out without its hash; send it when done
        self._queue: queue.Queue[_Job | None] = queue.Queue(queue_max)
        self._delete_room = queue_max // 2  # deleted files queue only while it is this short
        self._cond = threading.Condition()
        self._finished: list[_Job] = []  # guarded by _cond
        self._n_workers = max(1, workers)
        self._threads: list[threading.Thread] = []
        self._busy_since: list[float | None] = [None] * self._n_workers
        self._closed = False

    @property
    def failures(self) -> int:
        """Images that got no hash (every reason, size limit included)."""
        return self.stats["too_big"] + sum(self.stats["failed_" + r] for r in FAIL_REASONS)

    def want(self, algos: frozenset[str]) -> None:
        if algos == self.algos:
            return
        self.algos = algos
        self._mask = sum(bit for bit, name, _ in records.HASH_ORDER if name in algos)
        self._gen += 1
        self._announced.clear()
        self._results.clear()
        self._pending.clear()
        self._late.clear()
        while True:  # queued jobs of the old algorithms would only be thrown away
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                self.stats["stale"] += 1

    def forget_sent(self) -> None:
        """A new subscriber has seen no announcement yet: announce every image again (from the
        cache of finished hashes: no file is read twice)."""
        self._announced.clear()

    def records_for(self, recs: list[bytes]) -> list[bytes]:
        """`recs` with an IMAGE_HASH before each exec of an image not announced yet, if its hash
        is ready within `wait_s`; hashes that finished late come first."""
        if self._closed or not self.algos:
            return recs
        self._harvest()
        execs: list[tuple[int, Key]] = []
        waiting: list[_Job] = []
        for i, rec in enumerate(recs):
            if rec[1] != 0:  # u16 kind, little-endian: every kind here is below 256
                continue
            running = path = None
            if rec[0] == _EXEC_KIND and len(rec) >= _EXEC.size:
                v = _EXEC.unpack_from(rec)
                if v[_FLAGS] & _SKIP_FLAGS:
                    continue
                key, pid = (v[_DEV], v[_INO], v[_CTIME]), v[_PID]
                if not v[_FLAGS] & records.REC_F_EXE_TRUNC:
                    path = rec[_EXEC.size : _EXEC.size + v[_EXE_LEN]]
            elif rec[0] == _DELETE_KIND and self.deleted and len(rec) >= _DELETE.size:
                v = _DELETE.unpack_from(rec)
                if not (stat.S_ISREG(v[_D_MODE]) and v[_D_MODE] & 0o111 and v[_D_INO]):
                    self.stats["deleted_not_executable"] += 1  # FileDeleteDetected: Hashes "-"
                    continue
                key, pid, running = (v[_D_DEV], v[_D_INO], v[_D_CTIME]), v[_D_PID], _deleted_path(rec, v)
            else:
                continue
            execs.append((i, key))
            if key in self._announced or key in self._results:
                continue
            job = self._pending.get(key)
            if job is None and running is not None and self._queue.qsize() >= self._delete_room:
                self.stats["deleted_busy"] += 1  # half the queue stays for the images of execs
                continue
            if job is None:
                job = self._submit(key, pid, path and os.fsencode(join_path(path)), running)
            if job is not None:
                waiting.append(job)
        if waiting:
            self._wait(waiting)
        out = self._late_records()
        last = 0
        for i, key in execs:
            if key in self._announced:
                continue
            if key in self._results:
                out.extend(recs[last:i])
                last = i
                self._announce(key)
                digests = self._results[key]
                if digests is not None:
                    out.append(self._record(key, digests))
            elif key in self._pending:
                self.stats["late"] += 1
                self._late[key] = None
        out.extend(recs[last:])
        return out

    def close(self) -> None:
        """Stop the workers; one stuck in a system call is left behind (daemon thread)."""
        self._closed = True
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                break
        deadline = time.monotonic() + 1.0
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- internals -------------------------------------------------------------------------
    def _submit(self, key: Key, pid: int, path: bytes | None, running: bytes | None = None) -> _Job | None:
        if not self._threads:
            for slot in range(self._n_workers):
                t = threading.Thread(target=self._work, args=(slot,), name=f"image-hash-{slot}", daemon=True)
                t.start()
                self._threads.append(t)
        job = _Job(key, pid, path, self.algos, self._gen, running)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self.stats["refused"] += 1
            return None
        self._pending[key] = job
        return job

    def _work(self, slot: int) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._busy_since[slot] = time.monotonic()
            try:
                _run(job, self.max_size)
            except Exception:  # a dead worker would end hashing silently; count it instead
                job.why = "error"
            self._busy_since[slot] = None
            with self._cond:
                job.done = True
                self._finished.append(job)
                self._cond.notify_all()

    def _stuck(self, now: float) -> bool:
        """Every worker has been on one job for long: waiting would only stall the caller."""
        return all(s is not None and now - s > STUCK_S for s in self._busy_since)

    def _wait(self, jobs: list[_Job]) -> None:
        deadline = time.monotonic() + self.wait_s
        with self._cond:
            while not all(j.done for j in jobs):
                now = time.monotonic()
                if now >= deadline or self._stuck(now):
                    break
                self._cond.wait(deadline - now)
        self._harvest()

    def _harvest(self) -> None:
        with self._cond:
            finished, self._finished = self._finished, []
        for job in finished:
            if job.gen != self._gen:
                self.stats["stale"] += 1
                continue
            self._pending.pop(job.key, None)
            if job.why == "too_big":
                self.stats["too_big"] += 1
            elif job.why:
                self.stats["failed_" + job.why] += 1
            else:
                self.stats["hashed"] += 1
            self._results[job.key] = job.digests
            if len(self._results) > _MAX_CACHE:
                self._results.popitem(last=False)

    def _late_records(self) -> list[bytes]:
        out = []
        for key in list(self._late):
            if key in self._pending:
                continue
            del self._late[key]
            if key in self._results and key not in self._announced:
                self._announce(key)
                digests = self._results[key]
                if digests is not None:
                    out.append(self._record(key, digests))
        return out

    def _announce(self, key: Key) -> None:
        self._announced[key] = None
        if len(self._announced) > _MAX_CACHE:
            self._announced.popitem(last=False)

    def _record(self, key: Key, digests: bytes) -> bytes:
        values = dict.fromkeys(_HASH_FIELDS, 0)
        values.update(
            kind=records.IMAGE_HASH.kind,
            size=_HASH_STRUCT.size + len(digests),
            exe_dev=key[0],
            exe_ino=key[1],
            exe_ctime=key[2],
            algos=self._mask,
            digests_len=len(digests),
        )
        return _HASH_STRUCT.pack(*values.values()) + digests
