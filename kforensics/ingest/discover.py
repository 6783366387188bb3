"""Finding the input files: the files, folders (recursively) and globs a load is given."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kforensics.errors import InputError
from kforensics.ingest.read import os_reason


@dataclass
class Unreadable:
    """A file or folder named by the input that could not be read, and why."""

    path: Path
    reason: str


def discover(paths: Iterable[str | os.PathLike]) -> tuple[list[Path], list[Unreadable]]:
    """Return the files named by paths (files, folders recursively, globs) and what was unreadable.

    A folder that cannot be listed, or an entry that cannot be examined, is reported, never
    skipped in silence; a path that names nothing at all, a folder without files and a glob
    matching none are InputErrors.
    """
    found: list[Path] = []
    unreadable: list[Unreadable] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            before = len(unreadable)
            files = _walk(p, unreadable)
            if not files and len(unreadable) == before:
                # nothing to load: no case is created (discover runs before the case is opened)
                raise InputError(f"no files found in {arg} (hidden files and folders are skipped)")
            found.extend(files)
        elif p.is_file():
            found.append(p)
        elif glob.has_magic(str(arg)):
            matches = [Path(m) for m in sorted(glob.glob(str(arg), recursive=True))]
            files = [m for m in matches if m.is_file()]
            if not files:
                raise InputError(f"{arg}: no file matches this pattern")
            found.extend(files)
        elif p.exists():
            raise InputError(f"{arg}: not a regular file or folder")
        else:
            raise InputError(f"{arg}: no such file or folder")
    seen: set[Path] = set()
    unique: list[Path] = []
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique, unreadable


def _walk(root: Path, unreadable: list[Unreadable]) -> list[Path]:
    """Return the regular files under root (hidden ones skipped), in name order."""

    def failed(exc: OSError) -> None:
        unreadable.append(Unreadable(Path(exc.filename or root), f"cannot list: {os_reason(exc)}"))

    files: list[Path] = []
    for folder, dirs, names in os.walk(root, onerror=failed):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            f = Path(folder) / name
            try:
                if f.is_file():
                    files.append(f)
            except OSError as exc:
                unreadable.append(Unreadable(f, f"cannot examine: {os_reason(exc)}"))
    return files
