"""Errors of the wire format. A receiver counts each by class name and drops the frame.

FrameError
 ├── MalformedFrame    not msgpack, wrong shape, truncated or inconsistent record
 ├── VersionMismatch   another WIRE_VERSION
 └── UnknownKind       a record kind this side does not know
"""


class FrameError(Exception):
    """Base: something on the wire this side cannot use."""


class MalformedFrame(FrameError):
    pass


class VersionMismatch(FrameError):
    pass


class UnknownKind(FrameError):
    pass
