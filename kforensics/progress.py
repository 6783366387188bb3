"""A progress bar for long loads: on a terminal only, silent under papermill, CI and pipes."""

from __future__ import annotations

import os
import sys

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

# Below this, a bar would only flicker.
MIN_BYTES_FOR_BAR = 64 * 1024 * 1024


def progress_wanted(total: int) -> bool:
    """True when a bar helps: big input, stderr is a terminal, not CI."""
    return total >= MIN_BYTES_FOR_BAR and sys.stderr.isatty() and not os.environ.get("CI")


class ByteProgress:
    """Counts input bytes consumed; draws a bar when enabled."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.enabled = progress_wanted(total) if enabled is None else enabled
        self.total = total
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> ByteProgress:
        if self.enabled:
            self._bar = Progress(
                TextColumn("loading"),
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
