"""Image hashes for ProcessCreate, computed where the file is: on the collector's host.

Why here: a filterd on another host cannot open this host's files. Only the algorithms some
filterd subscribed to (b"want/h/SHA256") are computed. The kernel tells each exec's image
identity (device, inode, ctime); an image is hashed and announced (IMAGE_HASH) once per
identity, so 2000 execs of /bin/true cost one hash and no system call for the other 1999.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import OrderedDict

from shared import records
from shared.decode import field_index, join_path

_MAX_CACHE = 4096
_CHUNK = 1 << 20


_HASH_FIELDS = [f.name for f in records.IMAGE_HASH.all_fields]
_EXEC = struct.Struct(records.PROCESS_EXEC.fmt)
_EXEC_KIND = records.PROCESS_EXEC.kind
_PID, _INO, _CTIME, _DEV, _EXE_LEN = (
    field_index(records.PROCESS_EXEC, n) for n in ("pid", "exe_ino", "exe_ctime", "exe_dev", "exe_len")
)
_HASH_STRUCT = struct.Struct(records.IMAGE_HASH.fmt)


class ImageHasher:
    def __init__(self) -> None:
        self.algos: frozenset[str] = frozenset()
        self._mask = 0
        self._sent: OrderedDict[tuple[int, int, int], bool] = OrderedDict()
        self.failures = 0
        self.hashed = 0

    def want(self, algos: frozenset[str]) -> None:
        if algos != self.algos:
            self.algos = algos
            self._mask = sum(bit for bit, name, _ in records.HASH_ORDER if name in algos)
            self._sent.clear()

    def _digests(self, fd: int) -> bytes:
        hs = [hashlib.new(name.lower()) for _, name, _ in records.HASH_ORDER if name in self.algos]
        while chunk := os.read(fd, _CHUNK):
            for h in hs:
                h.update(chunk)
        self.hashed += 1
        return b"".join(h.digest() for h in hs)

    def digests_for(self, pid: int, path: str, ino: int, ctime: int) -> bytes | None:
        """Digests of the image the kernel saw (inode `ino`, ctime `ctime`): opened through
        /proc/<pid>/exe while the process lives, else by path; a file that is not that inode
        any more (replaced, rewritten) gives no hash rather than a wrong one."""
        for candidate in (f"/proc/{pid}/exe", path):
            try:
                fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if st.st_ino == ino and int(st.st_ctime) == ctime:
                    return self._digests(fd)
            except OSError:
                pass
            finally:
                os.close(fd)
        self.failures += 1
        return None

    def records_for(self, recs: list[bytes]) -> list[bytes]:
        """`recs` with an IMAGE_HASH before each exec of an image not announced yet."""
        out = []
        for rec in recs:
            if rec[0] == _EXEC_KIND and rec[1] == 0:  # u16 kind, little-endian
                v = _EXEC.unpack_from(rec)
                key = (v[_DEV], v[_INO], v[_CTIME])
                if key not in self._sent:
                    exe = join_path(rec[_EXEC.size : _EXEC.size + v[_EXE_LEN]])
                    digests = self.digests_for(v[_PID], exe, key[1], key[2])
                    self._sent[key] = True
                    if len(self._sent) > _MAX_CACHE:
                        self._sent.popitem(last=False)
                    if digests is not None:
                        out.append(self._record(key, digests))
            out.append(rec)
        return out

    def forget_sent(self) -> None:
        """A new subscriber has seen no announcement yet: announce every image again."""
        self._sent.clear()

    def _record(self, key: tuple[int, int, int], digests: bytes) -> bytes:
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
