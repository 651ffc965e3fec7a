"""Event sink that writes one JSON object per line (filterd/render/json_event.py) to a file or stdout.

Why its own writer instead of a Python file object: the daemon must never wait on its output.
- A regular file is written with O_APPEND, one write() per batch; a full disk fails at once
  (ENOSPC), and the lines that could not be written are counted as dropped.
- A pipe, FIFO, socket or terminal is written only as far as it takes data now: files we open
  ourselves are O_NONBLOCK; stdout, whose flags are shared with whoever started us, is left as
  it is and written in pieces of at most PIPE_BUF bytes, each after poll() said there is room.
  What does not fit waits in a bounded queue (MAX_PENDING bytes); past it lines are dropped and
  counted. A dead reader (EPIPE) drops and counts every line.
- Lines are never cut or merged: a line that was partly written is finished before anything
  else, or dropped (and counted) when the file is reopened or the sink closed.
`reopen()` (control request `reopen`, `sysmonctl reopen`, logrotate's postrotate) opens the path
again, so after a rename the next lines go to a new file; the old descriptor gets what it can
still take of a partly written line and is closed.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
from collections import deque
from collections.abc import Sequence

from filterd.render.json_event import encode_line, render_json
from filterd.render.xml import SystemHeader
from filterd.schema import EventType

STDOUT = "-"
MAX_PENDING = 4 << 20  # bytes waiting for a slow reader, then lines are dropped
MAX_WRITE = 1 << 20  # bytes per write() call
PIPE_BUF = select.PIPE_BUF
FILE_MODE = 0o640

# (event type, EventData values, header, EventRecordID, formatting time in ns): what the XML gets
Event = tuple[EventType, Sequence[str], SystemHeader, int, int]


def open_output(path: str) -> tuple[int, bool]:
    """Open `path` for appending: (fd, whether it is a regular file). Raises OSError."""
    fd = os.open(
        path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK, FILE_MODE
    )
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        os.close(fd)
        raise
    return fd, regular


class JsonSink:
    """JSON lines to `path` (a file, appended to) or to stdout (`-`)."""

    def __init__(self, path: str, *, max_pending: int = MAX_PENDING) -> None:
        self.path = path
        self.max_pending = max_pending
        self.sent = 0  # lines completely written
        self.dropped = 0  # lines lost: queue full, write error, cut by a reopen or close
        self.errors = 0  # write errors other than "would block"
        self.reopens = 0
        self.last_error: OSError | None = None
        self._queue: deque[bytes] = deque()  # whole lines, the first possibly partly written
        self._queued = 0  # bytes in _queue
        self._partial = False  # the first line in _queue is partly written
        if path == STDOUT:
            self._fd = 1
            st = os.fstat(1)
            self._regular = stat.S_ISREG(st.st_mode)
            # not ours to make non-blocking: poll first, then at most PIPE_BUF (fits when poll says so)
            self._chunk = 0 if self._regular or os.get_blocking(1) is False else PIPE_BUF
        else:
            self._fd, self._regular = open_output(path)
            self._chunk = 0

    # -- pipeline interface ----------------------------------------------------------------
    def send_events(self, events: Sequence[Event]) -> None:
        """Render and write a batch of events (one write() for a file)."""
        if self._queue:
            self._drain()
        q = self._queue
        for etype, values, header, record_id, now_ns in events:
            line = encode_line(render_json(etype, values, header, record_id, now_ns))
            if q and self._queued + len(line) > self.max_pending:
                self.dropped += 1
                continue
            q.append(line)
            self._queued += len(line)
        self._drain()

    def send(self, xml: str) -> None:
        """Sink protocol: this sink renders from values (send_events), never from XML."""

    def pump(self) -> None:
        """Write what waits for a slow reader; called from the main loop between batches."""
        if self._queue:
            self._drain()

    @property
    def pending(self) -> int:
        """Bytes waiting to be written."""
        return self._queued

    # -- writing ---------------------------------------------------------------------------
    def _room(self) -> bool:
        try:
            return _writable(self._fd)
        except OSError:
            return True  # let write() report what is wrong

    def _drain(self) -> None:
        q = self._queue
        limit = self._chunk or MAX_WRITE
        while q:
            if self._chunk and not self._room():
                return
            buf = q[0]
            if len(buf) < limit and len(q) > 1:
                parts, size = [], 0
                for line in q:
                    if parts and size + len(line) > limit:
                        break
                    parts.append(line)
                    size += len(line)
                buf = b"".join(parts)
            try:
                n = os.write(self._fd, buf[:limit] if len(buf) > limit else buf)
            except BlockingIOError:
                return
            except OSError as e:
                self._failed(e)
                return
            self._consume(n)
            if n == 0:
                return

    def _consume(self, n: int) -> None:
        q = self._queue
        self._queued -= n
        while n and q:
            head = q[0]
            if n >= len(head):
                n -= len(head)
                q.popleft()
                self.sent += 1
                self._partial = False
            else:
                q[0] = head[n:]
                self._partial = True
                n = 0

    def _failed(self, e: OSError) -> None:
        """A write error that waiting will not fix soon (ENOSPC, EPIPE, EIO, ...): every whole
        line waiting is dropped; a partly written one is kept to be finished if the error passes."""
        self.errors += 1
        self.last_error = e
        keep = 1 if self._partial else 0
        while len(self._queue) > keep:
            self._queued -= len(self._queue.pop())
            self.dropped += 1

    def _cut_partial(self) -> None:
        """Forget the rest of a partly written line (its start is in the file already)."""
        if self._partial and self._queue:
            self._queued -= len(self._queue.popleft())
            self.dropped += 1
            self._partial = False

    # -- file life -------------------------------------------------------------------------
    def reopen(self) -> bool:
        """Open the path again (after a rename by logrotate); stdout is not reopened (False).
        Raises OSError if the path cannot be opened: the current file is then kept."""
        if self.path == STDOUT:
            return False
        fd, regular = open_output(self.path)
        if self._partial:
            self._drain_partial()
        self._cut_partial()
        old, self._fd, self._regular = self._fd, fd, regular
        with contextlib.suppress(OSError):
            os.close(old)
        self.reopens += 1
        if self._queue:
            self._drain()
        return True

    def _drain_partial(self) -> None:
        """Finish a partly written line on the current descriptor if it takes it now."""
        head = self._queue[0]
        try:
            n = os.write(self._fd, head)
        except OSError:
            return
        self._consume(n)

    def close(self) -> None:
        """Write what can be written now, count the rest as dropped, close (idempotent)."""
        if self._fd < 0:
            return
        if self._queue:
            self._drain()
        self.dropped += len(self._queue)
        self._queue.clear()
        self._queued = 0
        self._partial = False
        if self._fd != 1:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1


def _writable(fd: int) -> bool:
    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & (select.POLLOUT | select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))
