"""A stand-alone subscriber used by the remote tests to play a (mostly unwelcome) peer.

Run inside a network namespace as `python -m tests.remote.peer ENDPOINT SECONDS MODE [KEYS...]`:

  plain                       a SUB without any security (NULL mechanism)
  stranger SERVER_KEY_FILE    a CURVE client with a fresh key pair the collector does not know
  client SERVER_KEY_FILE SECRET_FILE   an authorised CURVE client (the positive control)

It subscribes to everything and prints one JSON line: messages and topics received, and the
handshake events its socket monitor saw.
"""

from __future__ import annotations

import json
import sys
import time

import zmq
from zmq.utils.monitor import parse_monitor_message

from shared.curve import load_public, load_secret

_NAMES = {
    zmq.EVENT_HANDSHAKE_SUCCEEDED: "succeeded",
    zmq.EVENT_HANDSHAKE_FAILED_AUTH: "failed_auth",
    zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "failed_protocol",
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "failed_no_detail",
}


def main(argv: list[str]) -> int:
    endpoint, seconds, mode, *keys = argv
    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    if mode in ("stranger", "client"):
        sock.setsockopt(zmq.CURVE_SERVERKEY, load_public(keys[0]))
        if mode == "client":
            pair = load_secret(keys[1])
            public, secret = pair.public, pair.secret
        else:
            public, secret = zmq.curve_keypair()
        sock.setsockopt(zmq.CURVE_PUBLICKEY, public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, secret)
    elif mode != "plain":
        raise SystemExit(f"unknown mode {mode}")
    monitor = sock.get_monitor_socket(sum(_NAMES))
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    received, topics, events = 0, set(), []
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.monotonic() + float(seconds)
    while (left := deadline - time.monotonic()) > 0:
        for s, _ in poller.poll(int(left * 1000) + 1):
            if s is monitor:
                events.append(_NAMES.get(parse_monitor_message(monitor.recv_multipart())["event"], "?"))
            else:
                frames = sock.recv_multipart()
                received += 1
                topics.add(frames[0].decode(errors="replace"))
    print(json.dumps({"received": received, "topics": sorted(topics), "events": events}), flush=True)
    sock.disable_monitor()
    monitor.close(0)
    sock.close(0)
    ctx.term()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
