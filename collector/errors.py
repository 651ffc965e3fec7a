"""Collector errors, each naming what failed so an admin can act on it.

CollectorError
 ├── OffsetError   a kernel struct field could not be resolved from BTF
 └── LoadError     a BPF program failed to compile, load or attach
"""


class CollectorError(Exception):
    """Base of every error the collector reports before exiting."""


class OffsetError(CollectorError):
    pass


class LoadError(CollectorError):
    pass
