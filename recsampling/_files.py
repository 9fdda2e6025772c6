"""Writing files safely: atomic replacement that never leaves its temporary behind, and a check
that an output folder can take the files before any work is done.

Every file the package writes for later reading (checkpoints, ``recommender.json``,
``SHA256SUMS``, ``split.json``, the suite's cells and tables) goes through :func:`atomic_write`:
the content is written to a temporary file beside the target and renamed over it, so a reader
sees the old file or the new one, never half of one; when the write fails (a full disk, an
interrupt) the temporary is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable, Union

__all__ = ["atomic_write", "check_writable", "format_size"]

Content = Union[str, bytes, Callable[[Path], None]]


def atomic_write(path: str | Path, content: Content, encoding: str = "utf-8") -> Path:
    """Write ``content`` to ``path`` atomically; on any failure remove the temporary file.

    Parameters
    ----------
    path : str or Path
        The file to write; its folder must exist.
    content : str, bytes or callable
        Text (encoded with ``encoding``), bytes, or a function ``write(tmp_path)`` that writes
        the file itself (e.g. ``lambda p: torch.save(blob, p)``).
    encoding : str
        Of text content.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OSError
        from the write (``ENOSPC`` on a full disk, ``EACCES``, ...), after the temporary file is
        removed.
    """
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")  # one per process: writers never share one
    try:
        if callable(content):
            content(tmp)
        elif isinstance(content, str):
            tmp.write_text(content, encoding=encoding)
        else:
            tmp.write_bytes(content)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def format_size(n_bytes: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def check_writable(folder: str | Path, need_bytes: int = 0, what: str = "output folder") -> None:
    """Refuse, before any work, a folder that cannot be created or written or lacks the space.

    Nothing is left behind: the folder itself is not created (its nearest existing ancestor is
    probed with a temporary file, which is removed).

    Parameters
    ----------
    folder : str or Path
        Where the files will go (it may not exist yet).
    need_bytes : int
        A lower bound of the size of the files; the free space of the disk must hold it.
    what : str
        The folder's name in messages (e.g. ``"--out"``).

    Raises
    ------
    ValueError
        naming the folder: a path component is a file, it cannot be written (permissions, a
        read-only or full disk), or the disk has less than ``need_bytes`` free.
    """
    folder = Path(folder).expanduser().absolute()
    base = folder
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise ValueError(f"{what} {folder} cannot be created: {base} is a file, not a folder")
    probe = base / f".recsampling-write-test{os.getpid()}"
    try:
        probe.write_bytes(b"\0" * min(int(need_bytes), 4096))
    except OSError as e:
        raise ValueError(f"{what} {folder} cannot be written: {e.strerror or e}") from None
    finally:
        probe.unlink(missing_ok=True)
    free = shutil.disk_usage(base).free
    if need_bytes > free:
        raise ValueError(f"{what} {folder} is on a disk with {format_size(free)} free; the files need about "
                         f"{format_size(need_bytes)}: free some space or choose another folder")
