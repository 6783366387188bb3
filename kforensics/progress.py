"""A progress bar for long loads: on a terminal or in a live notebook; silent in batch runs.

Batch runs are CI (CI set), papermill (`kforensics report` marks its kernels with BATCH_ENV) and
pipes. In a notebook rich draws the bar in an ipywidgets Output, removed when the load ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

# Below this, a bar would only flicker.
MIN_BYTES_FOR_BAR = 64 * 1024 * 1024
# Set (to anything but "" or "0") in the environment of a kernel that no one watches:
# kforensics.reporting.run sets it for the papermill kernels it starts.
BATCH_ENV = "KFORENSICS_BATCH"


def batch_run(environ: Mapping[str, str] | None = None) -> bool:
    """True when no one watches this process: CI, or a kernel marked with BATCH_ENV."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("CI")) or environ.get(BATCH_ENV, "") not in ("", "0")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (ipykernel's shell), not a terminal IPython or a script."""
    ipython = sys.modules.get("IPython")  # never import IPython only to ask
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def progress_wanted(total: int) -> bool:
    """True when a bar helps: big input, stderr a terminal or a live notebook, not batch."""
    if total < MIN_BYTES_FOR_BAR or batch_run():
        return False
    return sys.stderr.isatty() or in_notebook()


@contextmanager
def batch_environment() -> Iterator[None]:
    """Mark the processes started inside (papermill's kernels) as batch runs; yields None."""
    before = os.environ.get(BATCH_ENV)
    os.environ[BATCH_ENV] = "1"  # a kernel inherits its parent's environment
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BATCH_ENV, None)
        else:
            os.environ[BATCH_ENV] = before


class ByteProgress:
    """Counts input bytes consumed; draws a bar when enabled."""

    def __init__(self, total: int, enabled: bool | None = None, label: str = "loading"):
        self.enabled = progress_wanted(total) if enabled is None else enabled
        self.label = label
        self.total = total
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> ByteProgress:
        if self.enabled:
            self._bar = Progress(
                TextColumn(self.label),
                BarColumn(),
                DownloadColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("load", total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
