"""Entry points of `import kforensics` that need more than a re-export: detect with defaults."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from kforensics.detection.rule import Rule, load_rules
from kforensics.detection.run import Exception_, Finding, load_exceptions
from kforensics.detection.run import detect as run_detect


def detect(
    case: str | Path,
    rules: list[Rule] | None = None,
    *,
    rule_dirs: list[Path] | tuple[Path, ...] = (),
    exceptions: list[Exception_] | str | Path = (),
    since: datetime | None = None,
    until: datetime | None = None,
    store: bool = True,
) -> list[Finding]:
    """Return the findings of the rules (default: built-in plus rule_dirs) over the case, stored.

    `exceptions` is a list or the path of an exceptions file, as `kforensics detect
    --exceptions` takes.
    """
    if rules is None:
        rules = load_rules([Path(d) for d in rule_dirs])
    if isinstance(exceptions, str | Path):
        exceptions = load_exceptions(Path(exceptions))
    return run_detect(case, rules, exceptions=exceptions, since=since, until=until, store=store)
