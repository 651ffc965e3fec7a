"""Image hashes for ProcessCreate, computed where the file is: on the collector's host.

Why here: a filterd on another host cannot open this host's files. Only the algorithms some
filterd subscribed to (b"want/h/SHA256") are computed, and each file is hashed once per
(device, inode, size, mtime, ctime): 2000 execs of /bin/true cost one hash and 2000 fstat().
The file is opened through /proc/<pid>/exe while the process lives (the exact image even if the
path was replaced), else by the path the kernel reported.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict

from shared import records
from shared.decode import encode

_MAX_CACHE = 4096
_CHUNK = 1 << 20


class ImageHasher:
    def __init__(self) -> None:
        self.algos: frozenset[str] = frozenset()
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.failures = 0

    def _digests(self, fd: int) -> bytes | None:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, self.algos)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        hs = [(bit, hashlib.new(name.lower())) for bit, name, _ in records.HASH_ORDER if name in self.algos]
        while chunk := os.read(fd, _CHUNK):
            for _, h in hs:
                h.update(chunk)
        out = b"".join(h.digest() for _, h in hs)
        self._cache[key] = out
        if len(self._cache) > _MAX_CACHE:
            self._cache.popitem(last=False)
        return out

    def record_for(self, pid: int, start_ns: int, path: str) -> bytes | None:
        """IMAGE_HASH record for this process, or None when nothing is wanted or readable."""
        if not self.algos:
            return None
        fd = -1
        for candidate in (f"/proc/{pid}/exe", path):
            try:
                fd = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC)
                break
            except OSError:
                continue
        if fd < 0:
            self.failures += 1
            return None
        try:
            digests = self._digests(fd)
        except OSError:
            self.failures += 1
            return None
        finally:
            os.close(fd)
        mask = sum(bit for bit, name, _ in records.HASH_ORDER if name in self.algos)
        return encode(records.IMAGE_HASH, (digests,), pid=pid, tid=pid, start_ns=start_ns, algos=mask)
