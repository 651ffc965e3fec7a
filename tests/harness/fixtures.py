"""pytest fixtures for the harness.

Use them by importing into a test module (pytest picks up fixtures from the module namespace):

    from tests.harness.fixtures import rsyslog  # noqa: F401  (fixture)

or, project-wide, in the root tests/conftest.py:

    pytest_plugins = ["tests.harness.fixtures"]

Both need /work/main on sys.path (PYTHONPATH=. or pytest's rootdir import).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.rsyslog import RSYSLOGD, Rsyslog


@pytest.fixture
def rsyslog() -> Iterator[Rsyslog]:
    """A running private rsyslogd (imuxsock on `rsyslog.socket_path`), stopped afterwards."""
    if not os.access(RSYSLOGD, os.X_OK):
        pytest.skip(f"{RSYSLOGD} not installed")
    with Rsyslog() as r:
        yield r
