"""Case notes: an analyst's tags, comments and marks on events, findings and identities.

Notes live in the case's `notes` table (schema.sql), which `load` and `detect` never touch. The
case is opened for writing only for the moment a note is stored, so notebooks reading the case
go on. Every value is bounded and checked here, once, for the CLI, the API and the widget.
"""

from __future__ import annotations

import getpass
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from kforensics.case import connect, transaction
from kforensics.errors import InputError
from kforensics.untrusted import visible

TARGET_KINDS = ("event", "finding", "identity")
MARKS = ("triaged", "false_positive")
MAX_COMMENT = 4096  # characters
MAX_REASON = 1024
MAX_IDENTITY = 512  # a Kubernetes username is rarely longer; the log's own value is bounded
MAX_AUTHOR = 128
MAX_ID = 128  # an event_id or finding_id is a short hash; more is not one
TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}")
# C0 controls but tab and newline, DEL, C1: never meant in a note, and a NUL cuts DuckDB's text
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SUBJECT = ("rule_id", "actor", "impersonated", "namespace", "resource", "name", "source_ips")
COLUMNS = (
    "note_id", "target_kind", "target", "tag", "comment", "mark", "reason", "author",
    "created_at",
)  # fmt: skip


def _text(what: str, value: Any, limit: int, *, single_line: bool = False) -> str:
    """Return value as a checked, stripped text of at most `limit` characters."""
    if not isinstance(value, str):
        raise InputError(f"{what} must be text, not {visible(repr(value))[:80]}")
    text = value.strip()
    if not text:
        raise InputError(f"{what} is empty")
    if len(text) > limit:
        raise InputError(f"{what} is {len(text)} characters long; at most {limit} are kept")
    bad = _CONTROL.search(text) or (single_line and re.search(r"[\t\n]", text))
    if bad:
        where = visible(text[max(0, bad.start() - 20) : bad.start()])
        raise InputError(
            f"{what} holds the control character U+{ord(bad.group()):04X} (after {where!r})"
        )
    return text


def default_author() -> str:
    """Return the OS user's name, the default author of a note ('unknown' without one)."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):  # a container user with no passwd entry and no $USER
        return "unknown"


def check_note(
    target_kind: str,
    target: str,
    *,
    tag: str | None = None,
    comment: str | None = None,
    mark: str | None = None,
    reason: str | None = None,
    author: str | None = None,
) -> dict[str, Any]:
    """Return the note's checked values (InputError naming the first bad one)."""
    check_kind(target_kind)
    if target_kind is None:
        raise InputError(f"a note needs a target kind: {', '.join(TARGET_KINDS)}")
    limit = MAX_IDENTITY if target_kind == "identity" else MAX_ID
    values: dict[str, Any] = {
        "target_kind": target_kind,
        "target": _text(f"the {target_kind}", target, limit, single_line=True),
    }
    if tag is not None and tag != "":
        if not isinstance(tag, str) or not TAG.fullmatch(tag):
            raise InputError(
                f"tag {visible(repr(tag))[:80]}: a tag is a word of letters, digits and "
                "_ . : / - (up to 63, starting with a letter or digit), such as lateral-movement"
            )
    values["tag"] = tag or None
    values["comment"] = (
        None if comment is None or comment == "" else _text("the comment", comment, MAX_COMMENT)
    )
    if mark is not None and mark != "":
        if mark not in MARKS:
            raise InputError(f"mark {visible(repr(mark))[:80]} is not one of {', '.join(MARKS)}")
        if target_kind != "finding":
            raise InputError(f"a {mark} mark is for findings; this note is on an {target_kind}")
        if reason is None or (isinstance(reason, str) and not reason.strip()):
            raise InputError(f"a {mark} mark needs a reason (why it is {mark.replace('_', ' ')})")
        values["reason"] = _text("the reason", reason, MAX_REASON)
    elif reason is not None and reason != "":
        raise InputError("a reason goes with a mark (triaged or false_positive); there is none")
    else:
        values["reason"] = None
    values["mark"] = mark or None
    if values["tag"] is None and values["comment"] is None and values["mark"] is None:
        raise InputError("a note needs a tag, a comment or a mark")
    who = default_author() if author is None or author == "" else author
    values["author"] = _text("the author", who, MAX_AUTHOR, single_line=True)
    return values


def _subject(con: duckdb.DuckDBPyConnection, kind: str, target: str) -> str | None:
    """Return the target's subject as JSON (findings), None for others; InputError if unknown."""
    if kind == "identity":
        return None
    table, column = ("events", "event_id") if kind == "event" else ("findings", "finding_id")
    columns = ", ".join(SUBJECT) if kind == "finding" else column
    rows = con.execute(
        f"SELECT {columns} FROM {table} WHERE {column} = $t LIMIT 1",  # noqa: S608 (constants)
        {"t": target},
    ).fetchall()
    if not rows and kind == "finding":
        # a finding gone from the table (an exception made of its false-positive mark drops it)
        # is still noted as it was: its mark can be changed back
        rows = con.execute(
            "SELECT subject FROM notes WHERE target_kind = 'finding' AND target = $t "
            "AND subject IS NOT NULL ORDER BY created_at DESC, note_id DESC LIMIT 1",
            {"t": target},
        ).fetchall()
        if rows:
            return rows[0][0]
    if not rows:
        hint = "kforensics detect stores them" if kind == "finding" else "see the events table"
        raise InputError(f"no {kind} {visible(repr(target))[:140]} in the case ({hint})")
    return json.dumps(dict(zip(SUBJECT, rows[0], strict=True))) if kind == "finding" else None


def add_note(
    case: str | Path,
    target_kind: str,
    target: str,
    *,
    tag: str | None = None,
    comment: str | None = None,
    mark: str | None = None,
    reason: str | None = None,
    author: str | None = None,
) -> int:
    """Return the id of the note stored on an event, finding or identity of the case.

    A mark ('triaged' or 'false_positive') is for findings and needs a reason; the author is the
    OS user unless given. InputError names a bad value or a target the case does not hold.
    """
    values = check_note(
        target_kind, target, tag=tag, comment=comment, mark=mark, reason=reason, author=author
    )
    con = connect(case, read_only=False)  # briefly: notebooks read the case meanwhile
    try:
        with transaction(con):
            subject = _subject(con, target_kind, values["target"])
            note_id = con.execute("SELECT coalesce(max(note_id), 0) + 1 FROM notes").fetchall()
            values |= {"note_id": note_id[0][0], "at": datetime.now(UTC), "subject": subject}
            con.execute(
                "INSERT INTO notes BY NAME SELECT $note_id AS note_id, $target_kind AS "
                "target_kind, $target AS target, $tag AS tag, $comment AS comment, $mark AS mark, "
                "$reason AS reason, $author AS author, $at AS created_at, $subject AS subject",
                values,
            )
    finally:
        con.close()
    return values["note_id"]


def notes_sql(*, subject: bool = True) -> str:
    """Return the SELECT of the notes ($kind, $target: NULL or the one wanted), oldest first."""
    columns = ", ".join((*COLUMNS, "subject") if subject else COLUMNS)
    return (
        f"SELECT {columns} FROM notes "  # noqa: S608 (constant column names)
        "WHERE ($kind::VARCHAR IS NULL OR target_kind = $kind) "
        "AND ($target::VARCHAR IS NULL OR target = $target) ORDER BY created_at, note_id"
    )


def check_kind(target_kind: str | None) -> None:
    """Raise InputError unless target_kind is None or one of TARGET_KINDS."""
    if target_kind is not None and target_kind not in TARGET_KINDS:
        raise InputError(
            f"target kind {visible(repr(target_kind))[:80]} is not one of {', '.join(TARGET_KINDS)}"
        )


def read_notes(
    con: duckdb.DuckDBPyConnection, target_kind: str | None = None, target: str | None = None
) -> list[dict[str, Any]]:
    """Return the notes (of one kind and/or target when given) as dicts, oldest first."""
    rows = con.execute(notes_sql(), {"kind": target_kind, "target": target}).fetchall()
    out = []
    for row in rows:
        note = dict(zip((*COLUMNS, "subject"), row, strict=True))
        note["subject"] = json.loads(note["subject"]) if note["subject"] else None
        out.append(note)
    return out


def notes(
    case: str | Path, target_kind: str | None = None, target: str | None = None
) -> list[dict[str, Any]]:
    """Return the case's notes (optionally of one target kind and/or target), oldest first."""
    check_kind(target_kind)
    con = connect(case)
    try:
        return read_notes(con, target_kind, target)
    finally:
        con.close()


def latest_marks(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Return each finding's latest marking note, by finding_id (the notes oldest first)."""
    marks: dict[str, dict[str, Any]] = {}
    for note in found:
        if note["target_kind"] == "finding" and note.get("mark"):
            marks[note["target"]] = note
    return marks
