"""The fast path of the mapping: native lines whose every mapped field has its right JSON type.

`mapping.mapped_select` reads every field as JSON and checks its type before casting, which
costs a second parse of most fields. Almost every line of a real log is well typed, so this
path parses each line once into the typed columns, as DuckDB's own `read_json` does. DuckDB's
typed parse silently turns `"verb": 5` into the string "5" and `"user": "x"` into an object of
nulls, so each value is then looked at: only a line with a string that could be another JSON
value's text (a number, `true`, an object or a list) or an object with no field has its
fields' JSON types read by `json_type`, a second parse of the line. The lists, annotations
and status code are parsed as JSON text and checked as the full mapping checks them. A line
that is not a well-typed audit event in every respect is left to `mapped_select`, which gives
it its reason (the same values either way: tests/test_typed.py).
"""

from __future__ import annotations

import json

from kforensics.ingest.mapping import (
    AUDIT_EVENT,
    OBJECTS,
    STRING_MAP,
    STRINGS,
    in_range,
    instant,
    project,
    status_code,
    strings_of,
)

# The typed parse: strings as VARCHAR, the lists, annotations and status code as JSON text
# (checked on that short text as the full mapping checks them), the bodies as JSON.
_TYPED: dict = {p: "VARCHAR" for p in STRINGS if "." not in p}
for _name in OBJECTS:
    _TYPED[_name] = {p.split(".")[1]: "VARCHAR" for p in STRINGS if p.startswith(_name + ".")}
_TYPED["user"].update(groups="JSON", extra="JSON")
_TYPED["impersonatedUser"].update(groups="JSON")
_TYPED["responseStatus"] = {"code": "JSON"}
_TYPED.update(sourceIPs="JSON", requestObject="JSON", responseObject="JSON", annotations="JSON")
_TYPED_LITERAL = json.dumps(_TYPED).replace("'", "''")

# The string fields a suspect line has checked by json_type. Not the timestamps: no other
# JSON value's text reads as an instant, and one that is no instant is refused anyway.
_TIMES = ("requestReceivedTimestamp", "stageTimestamp", "timestamp")
_CHECKED = {p: col for p, col in STRINGS.items() if p not in _TIMES}
# Where each checked field's JSON type is read (`json_type` with many paths parses once).
_PATHS = [f"$.{p}" for p in _CHECKED] + [f"$.{n}" for n in OBJECTS]
_AT = {p: i + 1 for i, p in enumerate(_PATHS)}  # SQL lists are 1-based
# Longer lines go to the full mapping: the typed parse of a many-megabyte line holds several
# copies of it at once (DuckDB's JSON arenas), more than a load's memory limit allows.
TYPED_MAX_BYTES = 1024 * 1024

# What DuckDB's typed parse makes of a JSON number (`-12`, `100000.0`, `2e-07`, `1e400`): a
# number as JSON writes it, which an IP address or a UUID is not.
_NUMBER = r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?"
# ... and of a boolean; the others in case a DuckDB prints a number that is not finite.
_WORDS = "('true', 'false', 'inf', '-inf', 'nan', '-nan', 'Infinity', '-Infinity', 'NaN')"
# The first characters of those texts and of an object's or a list's.
_FIRST = "{[-0123456789tfinIN"


def _other_type(text: str) -> str:
    """SQL: a VARCHAR of the typed parse may be the text of a JSON value that is no string.

    Never NULL. A string may read so too ("5"): its line is checked by json_type.
    """
    return (
        f"CASE WHEN strpos('{_FIRST}', left({text}, 1)) > 0 THEN ({text} IN {_WORDS} "
        f"OR starts_with({text}, '{{') OR starts_with({text}, '[') "
        f"OR regexp_full_match({text}, '{_NUMBER}')) ELSE false END"
    )


def _suspect() -> str:
    """SQL: the line has a string or object field that may not be of its JSON type.

    Never NULL; false means every such field is absent, null or of its type.
    """
    terms = [_other_type(col) for col in _CHECKED.values()]
    for name in OBJECTS:
        # A value that is not an object parses as an object of nulls, as `{}` does.
        fields = " AND ".join(f"e.{name}.{f} IS NULL" for f in _TYPED[name])
        terms.append(f"coalesce(e.{name} IS NOT NULL AND {fields}, false)")
    return "\n                OR ".join(terms)


def _absent_or(path: str, *types: str) -> str:
    """SQL over `t`: the field is absent, JSON null, or of one of the given JSON types."""
    allowed = ", ".join(f"'{t}'" for t in ("NULL", *types))
    return f"coalesce(t[{_AT[path]}] IN ({allowed}), true)"


def _well_typed() -> str:
    """SQL over a suspect line's `t`: each string and object field is of its JSON type."""
    checks = [_absent_or(f"$.{p}", "VARCHAR") for p in _CHECKED]
    checks += [_absent_or(f"$.{n}", "OBJECT") for n in OBJECTS]
    return "\n                AND ".join(checks)


def typed_select(chunk: str) -> str:
    """Return the SELECT of the events columns for the well-typed native lines of `chunk`.

    `chunk` is as for `mapping.mapped_select`; rows with `event` set (records) and lines
    this path cannot vouch for are left out: the caller maps those with `mapped_select`.
    """
    strings = ",\n                ".join(f"e.{p} AS {col}" for p, col in STRINGS.items())
    inner = f"""
        SELECT *,
            -- a CASE: only a suspect line pays for json_type's parse
            CASE WHEN suspect THEN json_type(event_text, {_PATHS!r}) END AS t
        FROM (
          SELECT *,
            {_suspect()} AS suspect,
            {status_code("e.responseStatus.code")} AS code,
            {strings_of("e.sourceIPs", "VARCHAR[]")} AS source_ips,
            {strings_of("e.user.groups", "VARCHAR[]")} AS user_groups,
            e.user.extra AS user_extra,
            {strings_of("e.impersonatedUser.groups", "VARCHAR[]")} AS impersonated_groups,
            {strings_of("e.annotations", "MAP(VARCHAR, VARCHAR)", STRING_MAP)} AS annotations,
            {instant("rts_text")} AS rts,
            {instant("stage_ts_text")} AS stage_ts,
            {instant("old_ts_text")} AS old_ts
          FROM (
            SELECT *,
                {strings}
            FROM (
                SELECT source_line, source_index, raw, envelope, source_format, digest,
                       position, line AS event_text,
                       try(from_json(small, '{_TYPED_LITERAL}')) AS e
                FROM (
                    -- a CASE, not a WHERE: DuckDB may test a WHERE's terms in any order
                    SELECT *, CASE WHEN strlen(line) <= {TYPED_MAX_BYTES}
                                   AND starts_with(line, '{{') THEN line END AS small
                    FROM {chunk}
                    WHERE line IS NOT NULL AND event IS NULL
                )
            )
            WHERE e IS NOT NULL
          )
        )"""  # noqa: S608 (chunk is a fixed internal table name, never data)
    # What the full mapping refuses (mapping._problem) is left to it.
    checked = f"""SELECT * FROM ({in_range(inner)})
        WHERE CASE WHEN suspect THEN {_well_typed()} ELSE true END
            AND (e.responseStatus.code IS NULL OR code IS NOT NULL)
            AND (e.sourceIPs IS NULL OR source_ips IS NOT NULL)
            AND (e.user.groups IS NULL OR user_groups IS NOT NULL)
            AND (e.impersonatedUser.groups IS NULL OR impersonated_groups IS NOT NULL)
            AND (e.annotations IS NULL OR annotations IS NOT NULL)
            AND (rts_text IS NULL OR rts IS NOT NULL)
            AND (stage_ts_text IS NULL OR stage_ts IS NOT NULL)
            AND (old_ts_text IS NULL OR old_ts IS NOT NULL)
            AND {AUDIT_EVENT}"""  # noqa: S608
    return project(checked, "NULL")
