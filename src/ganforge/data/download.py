"""Fetching data files: mirrors tried in turn, md5 checked, never a half-written file in place.

A download streams into a temporary file beside the destination and is renamed over it only
once complete and verified, so an interrupted run leaves nothing that looks like data.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from ganforge.errors import DataError

CHUNK_BYTES = 1 << 20


def md5sum(path: Path) -> str:
    """Hex md5 of the file at ``path``."""
    digest = hashlib.md5(usedforsecurity=False)  # an integrity check, not a security one
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress() -> Progress:
    """Bytes, speed and time left on a terminal's stderr; nothing elsewhere."""
    console = Console(stderr=True)
    return Progress(
        TextColumn("download {task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def _fetch(url: str, dest: Path, md5: str | None, timeout: float) -> None:
    """``url`` saved to ``dest`` via a temporary file; raises OSError or ValueError on failure."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as src,
            _progress() as bar,
        ):
            task = bar.add_task(dest.name, total=getattr(src, "length", None))
            for block in iter(lambda: src.read(CHUNK_BYTES), b""):
                digest.update(block)
                out.write(block)
                bar.advance(task, len(block))
        if md5 is not None and digest.hexdigest() != md5.lower():
            raise ValueError(f"md5 {digest.hexdigest()}, expected {md5}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def download_file(
    urls: Sequence[str], dest: Path, md5: str | None = None, *, timeout: float = 60.0
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that delivers it (with the right md5, if given).

    Any scheme urllib opens works (``https://``, ``file://``). Raises DataError listing every
    URL tried and why it failed.
    """
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{dest.parent}: cannot create the folder ({e})") from e
    failures = []
    for url in urls:
        try:
            _fetch(url, dest, md5, timeout)
            return dest
        except (OSError, ValueError, urllib.error.URLError) as e:
            # URLError/HTTPError/timeouts are OSErrors; a bad URL or md5 is a ValueError.
            failures.append(f"{url} ({getattr(e, 'reason', None) or e})")
    tried = "; ".join(failures) if failures else "no URLs given"
    raise DataError(f"could not download {dest.name}: {tried}")


def extract_folder(archive: Path, folder: str, dest: Path) -> list[Path]:
    """Unpack the regular files directly inside ``folder/`` of a .tar(.gz) into ``dest/folder``.

    Nothing else in the archive is written: no links, no subfolders, no absolute or ``..``
    paths, so a hostile archive cannot write outside ``dest``.
    """
    out_dir = dest / folder
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or len(parts) != 2 or parts[0] != folder:
                    continue
                if parts[1] in ("..", ".") or parts[1].startswith("."):
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                target = out_dir / parts[1]
                tmp = target.with_name(f".{target.name}.part")
                with src, tmp.open("wb") as out:
                    shutil.copyfileobj(src, out, CHUNK_BYTES)
                os.replace(tmp, target)
                written.append(target)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"{archive}: cannot unpack the archive ({e})") from e
    if not written:
        raise DataError(f"{archive}: the archive has no files under {folder}/")
    return written
