"""MD5, SHA-1 and SHA-256 from Python's own implementations, not OpenSSL's.

Why: hashlib maps libcrypto (about 3.5 MB resident) into every process that imports it, and
both daemons hash little (a config, a new image now and then, a stream file name). These are
the algorithms Sysmon's HashAlgorithms can ask for that Linux computes (IMPHASH is for PE files).
"""

from __future__ import annotations

from typing import Any

NAMES = ("MD5", "SHA1", "SHA256")


def new_hash(name: str, data: bytes = b"") -> Any:
    """A hash object (update/digest/hexdigest) for "MD5", "SHA1" or "SHA256"."""
    if name == "MD5":
        import _md5

        return _md5.md5(data)
    if name == "SHA1":
        import _sha1

        return _sha1.sha1(data)
    if name != "SHA256":
        raise ValueError(f"unsupported hash algorithm {name!r}")
    try:
        import _sha256  # Python 3.11

        return _sha256.sha256(data)
    except ImportError:
        import _sha2  # Python 3.12+

        return _sha2.sha256(data)
