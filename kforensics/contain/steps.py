"""One step of a containment plan: what to do, the objects and commands, and the evidence.

The plan runs in the order a responder works: contain the network, cut the access, evict,
rotate, then watch. Every command is built here from words that passed a name check and are
shell-quoted, so that a name from the log can neither break out of it nor target another object.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from kforensics.detection.run import Finding
from kforensics.investigate.redact import redact_text
from kforensics.netpol.names import is_dns1123_label
from kforensics.untrusted import markdown, visible

STEPS = ("contain", "cut-access", "evict", "rotate", "watch")
STEP_TITLES = {
    "contain": "Contain the network",
    "cut-access": "Cut the access",
    "evict": "Evict what the attacker placed",
    "rotate": "Rotate what it could have taken",
    "watch": "Watch for the containment being undone",
}
EVIDENCE_SHOWN = 8
# The only flags a plan's commands use: any other word starting with "-" came from the log
FLAGS = frozenset({"--ignore-not-found", "--ignore-daemonsets", "--delete-emptydir-data"})


@dataclass
class Action:
    """One thing to do at one step, with its objects, commands, evidence and why."""

    step: str
    kind: str
    name: str
    rationale: str
    findings: list[Finding] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # file:line of the events behind it
    objects: list[dict] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # rows for the case's remediations table (columns action, kind, namespace, name, ...)
    records: list[dict] = field(default_factory=list)
    quarantine: list[tuple[str, str]] = field(default_factory=list)

    def cited(self, limit: int = EVIDENCE_SHOWN) -> list[str]:
        """Return the evidence, earliest first, at most limit: its own events when it has
        them (the binding, the secret read), else those of its findings."""
        seen = dict.fromkeys(e for e in self.evidence if e)
        if not seen:
            for f in self.findings:
                for e in f.evidence:
                    seen[f"{e['source_file']}:{e['source_line']}"] = None
        out = list(seen)
        return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def safe_name(name: object) -> bool:
    """True when a log name may go into a command: printable, not a flag, no shell surprise."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 253
        and name.isprintable()
        and visible(name) == name
        and name not in (".", "..")
        and not name.startswith("-")  # kubectl would read it as a flag: `--all`
        and not any(c in name for c in "/% \t")
        and redact_text(name) == name  # a command is written out: no credential-looking word
    )


def kubectl(*words: str, namespace: str | None = None) -> str | None:
    """Return a kubectl command line with every word quoted, or None if a word is unsafe.

    A namespace must be a DNS-1123 label; other words come from the log only as names
    (checked by `safe_name`); the fixed words and FLAGS are kforensics' own.
    """
    if namespace is not None and not is_dns1123_label(namespace):
        return None
    args = ["kubectl", *words]
    if namespace is not None:
        args += ["--namespace", namespace]
    if not all(safe_name(w) or w in FLAGS for w in words):
        return None
    return shlex.join(args)


def say(text: object) -> str:
    """Return log-derived text fit for a plan: one line, no credential-looking value in it."""
    return redact_text(visible(str(text)))


def say_md(text: object) -> str:
    """Return log-derived text as inert Markdown, credential-looking values hidden."""
    return markdown(say(text))
