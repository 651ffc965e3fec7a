"""Where collector and filterd meet, and how: endpoints, transports, socket-monitor frames.

One module because both daemons (and sysmonctl) must agree on these; a value written out in two
places drifts. No socket is made here: the sockets belong to collector/publisher.py and
filterd/receiver.py.
"""

from __future__ import annotations

import struct

DEFAULT_ENDPOINT = "ipc:///run/sysmon/collector.sock"
LOCAL_TRANSPORTS = ("ipc://", "inproc://")  # reachable through the file system only
REMOTE_TRANSPORTS = ("tcp://",)  # CurveZMQ only (shared/curve.py)
QUEUE_BATCHES = 32  # send and receive high-water marks: the collector keeps what is unconfirmed;
# more in flight only copies its buffer into both daemons (bench/pipeline.py: filterd 35.8 -> 32.2 MB)


def is_local(endpoint: str) -> bool:
    return endpoint.startswith(LOCAL_TRANSPORTS)


def monitor_event(frames: list[bytes]) -> dict[str, int]:
    """A ZeroMQ socket-monitor message: event id (u16) and value (u32), native byte order
    (zmq_socket_monitor(3)). Not zmq.utils.monitor: importing it loads asyncio, some MB that
    neither daemon needs."""
    event, value = struct.unpack("=HI", frames[0][:6])
    return {"event": event, "value": value}
