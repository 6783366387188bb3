"""The fast path of the mapping: native lines whose every mapped field has its right JSON type.

`mapping.mapped_select` reads every field as JSON and checks its type before casting, which
costs a second parse of most fields. Almost every line of a real log is well typed, so this
path parses each line once into the typed columns, as DuckDB's own `read_json` does, and asks
`json_type` (one cheap pass over the same text) whether each field had the type the cast
assumed: DuckDB's typed parse would silently turn `"verb": 5` into the string "5". A line
that is not a well-typed audit event in every respect is left to `mapped_select`, which
gives it its reason (the same values either way: tests/test_typed.py).
"""

from __future__ import annotations

import json

from kforensics.ingest.mapping import AUDIT_EVENT, OBJECTS, STRINGS, in_range, instant, project

# The typed parse: strings as VARCHAR, the lists and annotations as JSON text (their elements
# are checked on that short text), the bodies as JSON as in the full mapping.
_TYPED: dict = {p: "VARCHAR" for p in STRINGS if "." not in p}
for _name in OBJECTS:
    _TYPED[_name] = {p.split(".")[1]: "VARCHAR" for p in STRINGS if p.startswith(_name + ".")}
_TYPED["user"].update(groups="JSON", extra="JSON")
_TYPED["impersonatedUser"].update(groups="JSON")
_TYPED["responseStatus"] = {"code": "BIGINT"}
_TYPED.update(sourceIPs="JSON", requestObject="JSON", responseObject="JSON", annotations="JSON")
_TYPED_LITERAL = json.dumps(_TYPED).replace("'", "''")

# Where each checked field's JSON type is read (`json_type` with many paths parses once).
_PATHS = (
    [f"$.{p}" for p in STRINGS]
    + [f"$.{n}" for n in OBJECTS]
    + ["$.sourceIPs", "$.user.groups", "$.impersonatedUser.groups", "$.annotations"]
    + ["$.responseStatus.code"]
)
# Longer lines go to the full mapping: the typed parse of a many-megabyte line holds several
# copies of it at once (DuckDB's JSON arenas), more than a load's memory limit allows.
TYPED_MAX_BYTES = 1024 * 1024

_AT = {p: i + 1 for i, p in enumerate(_PATHS)}  # SQL lists are 1-based


def _type(path: str) -> str:
    return f"t[{_AT[path]}]"


def _absent_or(path: str, *types: str) -> str:
    """SQL: the field is absent, JSON null, or of one of the given JSON types."""
    allowed = ", ".join(f"'{t}'" for t in ("NULL", *types))
    return f"coalesce({_type(path)} IN ({allowed}), true)"


def _strings_list(path: str, text: str) -> str:
    """SQL: the field is absent or null, or a list whose elements are all strings."""
    return (
        f"({_absent_or(path)} OR ({_type(path)} = 'ARRAY' AND "
        f"list_bool_and(list_transform(json_type({text}, '$[*]'), lambda x: x = 'VARCHAR')) "
        f"IS NOT false))"
    )


def _well_typed() -> str:
    """SQL: every mapped field of the event has the JSON type the typed parse assumed."""
    checks = [_absent_or(f"$.{p}", "VARCHAR") for p in STRINGS]
    checks += [_absent_or(f"$.{n}", "OBJECT") for n in OBJECTS]
    checks += [
        _strings_list("$.sourceIPs", "e.sourceIPs"),
        _strings_list("$.user.groups", "e.user.groups"),
        _strings_list("$.impersonatedUser.groups", "e.impersonatedUser.groups"),
        # The map cast is NULL for an object with repeated keys: the full mapping's reason.
        f"({_absent_or('$.annotations')} OR ({_type('$.annotations')} = 'OBJECT' "
        "AND annotations IS NOT NULL AND list_bool_and(list_transform("
        "json_type(e.annotations, '$.*'), lambda x: x = 'VARCHAR')) IS NOT false))",
        f"({_absent_or('$.responseStatus.code')} OR ("
        f"{_type('$.responseStatus.code')} IN ('BIGINT', 'UBIGINT') AND code IS NOT NULL))",
        "(rts_text IS NULL OR rts IS NOT NULL)",
        "(stage_ts_text IS NULL OR stage_ts IS NOT NULL)",
        "(old_ts_text IS NULL OR old_ts IS NOT NULL)",
        AUDIT_EVENT,
    ]
    return "\n            AND ".join(checks)


def _column(path: str) -> str:
    """SQL reference of a typed string field (`e.verb`, `e.user.username`)."""
    return f"e.{path}"


def typed_select(chunk: str) -> str:
    """Return the SELECT of the events columns for the well-typed native lines of `chunk`.

    `chunk` is as for `mapping.mapped_select`; rows with `event` set (records) and lines
    this path cannot vouch for are left out: the caller maps those with `mapped_select`.
    """
    strings = ",\n                ".join(f"{_column(p)} AS {col}" for p, col in STRINGS.items())
    inner = f"""
        SELECT * FROM (
            SELECT *,
                CASE WHEN code_64 BETWEEN -2147483648 AND 2147483647 THEN code_64::INTEGER
                    END AS code,
                from_json(e.sourceIPs, '["VARCHAR"]') AS source_ips,
                from_json(e.user.groups, '["VARCHAR"]') AS user_groups,
                e.user.extra AS user_extra,
                from_json(e.impersonatedUser.groups, '["VARCHAR"]') AS impersonated_groups,
                try(from_json(e.annotations, '"MAP(VARCHAR, VARCHAR)"')) AS annotations,
                {instant("rts_text")} AS rts,
                {instant("stage_ts_text")} AS stage_ts,
                {instant("old_ts_text")} AS old_ts
            FROM (
                SELECT *,
                    json_type(event_text, {_PATHS!r}) AS t,
                    e.responseStatus.code AS code_64,
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
    checked = f"SELECT * FROM ({in_range(inner)})\n        WHERE {_well_typed()}"  # noqa: S608
    return project(checked, "NULL")
