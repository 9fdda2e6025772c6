"""SHA-256 checksums of saved files, kept in a ``SHA256SUMS`` manifest in the same folder.

The manifest has ``sha256sum``'s format (one ``<hex digest>  <file name>`` line per file), so
``sha256sum -c SHA256SUMS`` checks a saved folder by hand too. :func:`record_checksum` adds or
updates a file's line after the file is written; :func:`verify_checksum` compares a file with its
line before it is read.

A checksum detects corruption (a flipped byte, a truncated copy); it is no defence against someone
who can rewrite the folder, manifest included. What keeps an edited file from corrupting memory is
the validation of everything read back (:class:`recsampling.data.Interactions` and
:func:`recsampling.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from recsampling._files import atomic_write

__all__ = ["MANIFEST", "file_sha256", "record_checksum", "verify_checksum"]

MANIFEST = "SHA256SUMS"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 digest of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _read_manifest(folder: Path) -> dict[str, str] | None:
    """``{file name: digest}`` of ``folder/SHA256SUMS``; None when there is none."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is corrupted (not text); expected '<sha256>  <file name>' lines") from None
    out = {}
    for k, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            raise ValueError(f"{str(path)!r} line {k} is corrupted: {line[:80]!r}; expected '<sha256>  <file name>'")
        out[match.group(2)] = match.group(1)
    return out


def record_checksum(path: str | Path) -> str:
    """Write ``path``'s digest into the manifest of its folder (atomically); returns the digest."""
    path = Path(path)
    digest = file_sha256(path)
    entries = _read_manifest(path.parent) or {}
    entries[path.name] = digest
    text = "".join(f"{d}  {name}\n" for name, d in sorted(entries.items()))
    atomic_write(path.parent / MANIFEST, text)
    return digest


def verify_checksum(path: str | Path) -> bool:
    """Check ``path`` against its folder's manifest.

    Returns
    -------
    bool
        True when the digest matches; False when the folder has no manifest or the manifest has
        no line for the file (saved before checksums were written, or copied without it).

    Raises
    ------
    ValueError
        naming the file when its digest differs from the recorded one.
    """
    path = Path(path)
    entries = _read_manifest(path.parent)
    if entries is None or path.name not in entries:
        return False
    digest = file_sha256(path)
    if digest != entries[path.name]:
        raise ValueError(f"{str(path)!r} is corrupted or was changed after it was saved: its SHA-256 is "
                         f"{digest[:16]}..., {MANIFEST} records {entries[path.name][:16]}...")
    return True
