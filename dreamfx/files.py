"""Writing files atomically (every writer of dreamfx goes through here), and sealing model files.

A sealed file carries the SHA-256 of its own bytes, written where a placeholder
of 64 zeros stood (the digest of the file with that placeholder): any byte
that changes afterwards, a flipped bit anywhere, makes the seal fail.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on any error removed.

    The temporary name keeps ``path``'s extension (writers that pick a format
    from it still work) and gets the usual file permissions, not mkstemp's 0600.
    So an error or Ctrl-C never leaves a half-written ``path`` nor a stray file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_partial_files(path: str | Path) -> int:
    """Remove the temporary files :func:`atomic_path` made for ``path`` and could not remove itself (its process
    was killed); returns how many.  Only call it when no writer of ``path`` is running."""
    path = Path(path)
    stale = list(path.parent.glob(f".{glob.escape(path.stem)}.*.part{glob.escape(path.suffix)}"))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return len(stale)


SEAL_KEY = "dreamfx_sha256"       # the metadata key whose value is the seal
UNSEALED = "0" * 64               # its value while the digest is computed


def seal(data: bytes) -> bytes:
    """``data`` (holding SEAL_KEY, then UNSEALED) with the placeholder replaced by the SHA-256 of ``data``."""
    at = data.index(UNSEALED.encode(), data.index(SEAL_KEY.encode()))
    return data[:at] + hashlib.sha256(data).hexdigest().encode() + data[at + len(UNSEALED):]


def seal_intact(data: bytes, digest: str) -> bool:
    """Whether ``data`` is the file that was sealed with ``digest`` (read from its metadata)."""
    at = data.find(digest.encode()) if len(digest) == len(UNSEALED) else -1
    unsealed = data[:at] + UNSEALED.encode() + data[at + len(UNSEALED):]
    return at >= 0 and hashlib.sha256(unsealed).hexdigest() == digest
