"""Running the rules over a case: hits, exceptions, and findings that cite their evidence."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from kforensics.case import added_table, connect, create_schema, transaction
from kforensics.detection.ev import MACROS, ev_select, prepare
from kforensics.detection.ev_store import TOUCHED_REQUESTS, StaleRows
from kforensics.detection.ev_store import keep as keep_ev
from kforensics.detection.exceptions import (  # noqa: F401 (run still exports them)
    EXCEPTION_FIELDS,
    Exception_,
    check_exceptions,
    exception_sql,
    load_exceptions,
)
from kforensics.detection.rule import SUBJECT_FIELDS, Rule
from kforensics.detection.sensitive import SensitiveTargets, store_targets
from kforensics.detection.since_last import (
    Incremental,
    SinceLastError,
    describe,
    last_run,
    new_events_only,
    plan,
    store_watermark,
)
from kforensics.detection.store import store_findings
from kforensics.errors import CaseError, ExceptionsError, RuleSQLError  # noqa: F401
from kforensics.levels import rank, severity_sql


@dataclass
class Finding:
    """What a rule found about one subject, with every event behind it.

    `actor` is who sent the requests and `impersonated` whom they impersonated (`kubectl --as`),
    each when the evidence agrees on one; `quality` lists the flags of the evidence events (what
    they lack, see mapping.QUALITY_FLAGS). An undated finding (every event undated) has no
    first_seen and last_seen.
    """

    finding_id: str
    rule_id: str
    title: str
    level: str
    attack: list[str]
    tactics: list[str]
    first_seen: datetime | None
    last_seen: datetime | None
    actor: str | None
    source_ips: list[str]
    namespace: str | None
    resource: str | None
    name: str | None
    count: int
    evidence: list[dict]
    impersonated: str | None = None
    quality: list[str] = field(default_factory=list)
    # the sensitive workloads its evidence targets (namespace/Kind/name), and the rule's own
    # level when that raised it (rule YAML `sensitive: {level: ...}`)
    sensitive: list[str] = field(default_factory=list)
    raised_from: str | None = None

    @property
    def who(self) -> str | None:
        """Return the actor as a person reads it: `alice as system:admin` under impersonation."""
        if self.impersonated is None:
            return self.actor
        return f"{self.actor or '(unknown)'} as {self.impersonated}"

    def to_json(self) -> dict:
        """Return the finding in the JSON lines contract other tools consume."""
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "level": self.level,
            "attack": self.attack,
            "tactics": self.tactics,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "actor": self.actor,
            "impersonated": self.impersonated,
            "source_ips": self.source_ips,
            "namespace": self.namespace,
            "resource": self.resource,
            "name": self.name,
            "count": self.count,
            "evidence": self.evidence,
            "quality": self.quality,
            "sensitive": self.sensitive,
            "raised_from": self.raised_from,
        }


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _hits(con: duckdb.DuckDBPyConnection, rule: Rule, exceptions: list[Exception_]) -> None:
    """Add the rule's hits (after its exceptions) to the temp table hits.

    Subject columns stay NULL unless the rule returns its own; the grouping fills them from ev,
    so a rule without exceptions costs its own query and nothing more.
    """
    try:
        probe = f"SELECT * FROM ({rule.sql}) LIMIT 0"  # noqa: S608 (the rule's own SQL)
        columns = [d[0] for d in con.execute(probe).description]
    except duckdb.Error as exc:
        raise RuleSQLError(f"{rule.path}: {str(exc).splitlines()[0]}") from exc
    if "event_id" not in columns:
        raise RuleSQLError(f"{rule.path}: the SQL must return event_id")
    own = ", ".join(f"r.{f}" if f in columns else f"NULL::VARCHAR AS {f}" for f in SUBJECT_FIELDS)
    params: dict = {"rule": rule.id}
    mine = [e for e in exceptions if e.rule_id == rule.id]
    where = ""
    if mine:
        # Exceptions see the subject as the finding will show it, and the event's own fields.
        h = ", ".join(
            f"coalesce(r.{f}, ev.{f}) AS {f}" if f in columns else f"ev.{f} AS {f}"
            for f in SUBJECT_FIELDS
        )
        where = f"JOIN ev USING (event_id), LATERAL (SELECT {h}) h "
        where += "WHERE NOT (" + " OR ".join(exception_sql(e, params) for e in mine) + ")"
    sql = (
        f"INSERT INTO hits SELECT DISTINCT $rule, r.event_id, {own} "  # noqa: S608
        f"FROM ({rule.sql}) r {where}"
    )
    try:
        con.execute(sql, params)
    except duckdb.Error as exc:
        raise RuleSQLError(f"{rule.path}: {str(exc).splitlines()[0]}") from exc


def group_key(rules: list[Rule]) -> str:
    """Return the SQL of a hit's subject key, by its rule's group_by fields.

    The finding ID is the MD5 of rule id and this key: the same SQL in DuckDB and Spark SQL
    (`kforensics.spark.detect`), so both engines give a finding the same ID.
    """
    keys = []
    for f in SUBJECT_FIELDS:
        # Rule ids are validated identifiers ([a-z0-9-]), safe as literals.
        ids = ", ".join(f"'{r.id}'" for r in rules if f in r.group_by) or "NULL"
        value = f"coalesce({f}, '')"
        if f == "actor":
            # Who and as whom: alice as system:admin is not the same subject as alice. (Nothing is
            # added without impersonation, so those finding IDs stay what they were.)
            value += " || coalesce('|as:' || impersonated_user, '')"
        keys.append(f"CASE WHEN rule_id IN ({ids}) THEN {value} ELSE '*' END")
    return " || '|' || ".join(keys)


def _group_sql(rules: list[Rule]) -> str:
    """Return the query grouping hits into findings, each rule by its own group_by fields."""
    subject = ", ".join(f"coalesce(h.{f}, ev.{f}) AS {f}" for f in SUBJECT_FIELDS)
    return f"""
    WITH s AS (
        SELECT h.rule_id, h.event_id, {subject}, ev.impersonated_user, ev.ts, ev.audit_id,
               ev.source_file, ev.source_line, ev.source_index, ev.quality
        FROM hits h JOIN ev USING (event_id)
    ),
    k AS (SELECT *, {group_key(rules)} AS gkey FROM s)
    SELECT
        substr(md5(rule_id || '|' || gkey), 1, 16) AS finding_id,
        rule_id,
        min(ts) AS first_seen,
        max(ts) AS last_seen,
        CASE WHEN count(DISTINCT actor) = 1 THEN any_value(actor) END AS actor,
        -- impersonated only when every event of it was, as the same identity
        CASE WHEN count(DISTINCT impersonated_user) = 1 AND count(impersonated_user) = count(*)
            THEN any_value(impersonated_user) END AS impersonated,
        list_sort(list_distinct(list(source_ip))) AS source_ips,
        CASE WHEN count(DISTINCT namespace) = 1 THEN any_value(namespace) END AS namespace,
        CASE WHEN count(DISTINCT resource) = 1 THEN any_value(resource) END AS resource,
        CASE WHEN count(DISTINCT name) = 1 THEN any_value(name) END AS name,
        count(*) AS count,
        list({{'event_id': event_id, 'audit_id': audit_id, 'source_file': source_file,
               'source_line': source_line}}
             ORDER BY ts NULLS LAST, source_file, source_line, source_index, event_id) AS evidence,
        list_sort(list_distinct(flatten(list(quality)))) AS quality
    FROM k
    GROUP BY rule_id, gkey
    """  # noqa: S608 (only validated rule ids and fixed field names are formatted in)


def run_rules(
    con: duckdb.DuckDBPyConnection,
    rules: list[Rule],
    exceptions: list[Exception_] = (),
    incremental: Incremental | None = None,
) -> list[Finding]:
    """Return the findings of rules over the prepared `ev` table, most severe first.

    With incremental (`since_last.plan`), its local rules see only the new events and the
    evidence of the last run's findings; the findings are those of all the rules over all ev.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE hits (rule_id VARCHAR, event_id VARCHAR, actor VARCHAR, "
        "source_ip VARCHAR, namespace VARCHAR, resource VARCHAR, name VARCHAR)"
    )
    local = [] if incremental is None else [r for r in rules if r.id in incremental.local]
    if local:
        with new_events_only(con, incremental):
            for rule in local:
                _hits(con, rule, list(exceptions))
    for rule in rules:
        if incremental is None or rule.id not in incremental.local:
            _hits(con, rule, list(exceptions))
    by_id = {r.id: r for r in rules}
    targets: dict[str, list[str]] = {}
    for event_id, workloads in con.execute(
        "SELECT event_id, list_sort(list(DISTINCT workload)) FROM sensitive_access "
        "WHERE event_id IN (SELECT event_id FROM hits) GROUP BY event_id"
    ).fetchall():
        targets[event_id] = workloads
    findings = []
    for row in con.execute(_group_sql(rules)).fetchall():
        rule = by_id[row[1]]
        findings.append(finding_of(row, rule))
        _mark_sensitive(findings[-1], rule, targets)
    sort_findings(findings)
    return findings


def finding_of(row: tuple, rule: Rule) -> Finding:
    """Return the finding of one grouped row (the columns of the grouping query, in order).

    Both engines group hits into these columns: DuckDB (`_group_sql`) and Spark
    (`kforensics.spark.detect`).
    """
    (fid, _, first, last, actor, impersonated, ips, ns, resource, name, count, evidence,
     quality) = row  # fmt: skip
    return Finding(
        fid, rule.id, rule.title, rule.level, list(rule.techniques), list(rule.tactics),
        first, last, actor, [ip for ip in ips if ip], ns, resource, name, count,
        [dict(e) for e in evidence], impersonated, list(quality),
    )  # fmt: skip


def sort_findings(findings: list[Finding]) -> None:
    """Sort findings in place, most severe first (then sensitive, dated, earliest...)."""
    findings.sort(
        key=lambda f: (
            -rank(f.level),
            not f.sensitive,  # the same level on a sensitive workload first
            f.first_seen is None,  # undated last
            f.first_seen or _EPOCH,
            f.rule_id,
            f.actor or "",
            f.impersonated or "",
            f.namespace or "",
            f.name or "",
            f.finding_id,
        )  # fmt: skip
    )


def _mark_sensitive(f: Finding, rule: Rule, targets: dict[str, list[str]]) -> None:
    """Note the sensitive workloads f's evidence targets; raise its level if the rule says so."""
    found = sorted({w for e in f.evidence for w in targets.get(e["event_id"], ())})
    f.sensitive = found
    if found and rule.sensitive_level and rank(rule.sensitive_level) > rank(f.level):
        f.raised_from, f.level = f.level, rule.sensitive_level


# the only formatted part is the level order, a constant of kforensics.levels
_STORED = (
    "SELECT finding_id, rule_id, title, level, attack, tactics, first_seen, last_seen, actor, "  # noqa: S608
    "source_ips, namespace, resource, name, count, evidence, impersonated, quality, "
    "coalesce(s.workloads, []), s.raised_from "
    "FROM findings LEFT JOIN sensitive_findings s USING (finding_id) "
    f"ORDER BY {severity_sql()}, s.finding_id IS NULL, first_seen NULLS LAST, rule_id, finding_id"
)


def stored_findings(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """Return the findings the last `detect` stored in the case, most severe first."""
    added_table(con, "sensitive_findings")  # a case detected before version 5 has none
    rows = con.execute(_STORED).fetchall()
    return [Finding(*row) for row in rows]


def detect(
    case: str | Path,
    rules: list[Rule],
    *,
    exceptions: list[Exception_] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    store: bool = True,
    known_rules: list[str] | tuple[str, ...] = (),
    sensitive: SensitiveTargets | None = None,
    baseline_case: str | Path | None = None,
    baseline_until: datetime | None = None,
    since_last: bool = False,
    report: Callable[[str], None] | None = None,
) -> list[Finding]:
    """Run rules over the case (between since and until); store and return the findings.

    since_last continues the last stored run (`kforensics.detection.since_last`): the rules that
    judge one event alone see the events loaded since, the others the whole case, and the
    findings are merged into the stored ones (those of a full run). Without an earlier run that
    recorded its loads, it is a full run. report, if given, is told which (one line).

    An exception must name one of the rules, of known_rules (those not run now: another
    status) or a built-in rule: one for no rule at all is an ExceptionsError.

    sensitive is a declaration resolved against the case (`sensitive.store.targets`), stored
    with the findings; None uses the sensitive workloads the case stored. Their baseline is the
    case before baseline_until (default: since) and every request of baseline_case.
    """
    check_exceptions(list(exceptions), {r.id for r in rules} | set(known_rules))
    if since_last and (since is not None or until is not None):
        raise SinceLastError("--since-last continues a run over the whole case: no --since/--until")
    sql = [r.sql for r in rules]
    kept = since_last and store  # a run that stores nothing writes nothing either
    for _ in range(3):
        if kept:
            _keep_ev(case, rules, list(exceptions))
        # Read-only while the rules run (notebooks go on reading beside it); the case is
        # written only for the moment the findings are stored (and, with --since-last, the
        # moment ev's rows are brought up to date).
        con = connect(case)
        try:
            with bounded_memory(con) as work:
                try:
                    prepare(
                        con, since, until,
                        sensitive_rows=None if sensitive is None else sensitive.rows,
                        baseline_until=baseline_until, baseline_case=baseline_case,
                        sql=sql, work=work, kept=kept,
                    )  # fmt: skip
                except StaleRows:
                    continue  # a load finished since ev's rows were kept: keep them again
                incremental = plan(con, rules, list(exceptions)) if since_last else None
                if since_last and report is not None:
                    report(describe(incremental, len(rules)))
                findings = run_rules(con, rules, exceptions, incremental)
                seen = _loads(con)
        finally:
            con.close()
        if not store:
            return findings
        con = connect(case, read_only=False)
        try:
            create_schema(con)  # a case loaded by an older version may lack `findings`
            if _loads(con) != seen:
                continue  # a load finished meanwhile: its events must be in the findings
            run = {
                "rules": [r.id for r in rules],
                "exceptions": len(exceptions),
                "since": since,
                "until": until,
            }
            at = datetime.now(UTC)
            with transaction(con):
                if sensitive is not None:
                    store_targets(
                        con, sensitive, at, baseline_until or since,
                        None if baseline_case is None else str(baseline_case),
                    )  # fmt: skip
                store_findings(con, findings, at, run, list(exceptions))
                store_watermark(con, at, [i for i, _ in seen], rules, list(exceptions))
            return findings
        finally:
            con.close()
    raise CaseError(f"{case}: loads kept changing the case while detecting: run detect again")


def _keep_ev(case: str | Path, rules: list[Rule], exceptions: list[Exception_]) -> None:
    """Bring the ev rows the case keeps up to date for rules (one transaction); raise
    SinceLastError, writing nothing, when --since-last cannot go on from the last run."""
    sql = [r.sql for r in rules]
    con = connect(case, read_only=False)
    try:
        with tempfile.TemporaryDirectory(prefix="kforensics-detect-") as folder:
            _bound(con, folder)  # deriving every request is a read's work: a read's memory
            create_schema(con)
            last_run(con, rules, exceptions)  # a refused run is refused before it writes
            con.execute(MACROS)  # the rows' SQL calls them
            with transaction(con):
                keep_ev(con, ev_select(con, sql), ev_select(con, sql, TOUCHED_REQUESTS))
    finally:
        con.close()


# What DuckDB may hold in memory while detecting; the rules' joins spill to a temporary folder
# beyond it, so that detect's memory stays flat in the number of events.
MEMORY_LIMIT = "1GB"
# From this many events on, `ev` is built in a compressed work file in that folder (about 1 KB
# a request in memory, 60 bytes on disk): beyond that it would spill uncompressed.
WORK_FILE_FROM = 2_000_000


@contextmanager
def bounded_memory(con: duckdb.DuckDBPyConnection) -> Iterator[str | None]:
    """Bound con's memory to MEMORY_LIMIT, spilling to a temporary folder removed afterwards;
    yield the name of the work database to build `ev` in (None: in memory)."""
    with tempfile.TemporaryDirectory(prefix="kforensics-detect-") as folder:
        _bound(con, folder)
        work = None
        if con.execute("SELECT count(*) FROM events").fetchall()[0][0] >= WORK_FILE_FROM:
            con.execute("ATTACH $p AS kf_work (READ_WRITE)", {"p": str(Path(folder) / "ev")})
            work = "kf_work"
        try:
            yield work
        finally:
            # temp tables and the work file live in the folder: let go of them before it goes
            con.execute("DROP VIEW IF EXISTS temp.ev")
            for (name,) in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary"
            ).fetchall():
                con.execute(f'DROP TABLE IF EXISTS temp."{name.replace(chr(34), chr(34) * 2)}"')
            if work is not None:
                con.execute("DETACH kf_work")


def _bound(con: duckdb.DuckDBPyConnection, folder: str) -> None:
    """Bound con's memory to MEMORY_LIMIT, spilling to folder."""
    con.execute("SET memory_limit = $m", {"m": MEMORY_LIMIT})
    con.execute("SET temp_directory = $d", {"d": folder})


def _loads(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """Return the case's loads (id, finished), which a concurrent load changes."""
    return con.execute("SELECT load_id, finished_at FROM loads ORDER BY load_id").fetchall()
