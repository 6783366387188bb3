"""Case notes: stored with author and time, kept through load and detect, shown escaped, and
false-positive marks turned into the exceptions that drop exactly those findings."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kforensics as kf
from kforensics import connect, load
from kforensics.cli import main
from kforensics.detection.false_positives import false_positives, glob_literal
from kforensics.detection.rule import load_rules
from kforensics.detection.run import detect, load_exceptions
from kforensics.errors import InputError
from kforensics.investigate import notes as notes_module
from kforensics.investigate.notes import MAX_COMMENT, add_note, check_note, notes
from tests.conftest import SAMPLES, event, jsonl

AT = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)
HOSTILE = [
    "<script>document.title='pwned'</script>",
    "</td></tr></table><img src=x onerror=\"document.title='pwned'\">",
    "**bold** [link](javascript:alert(1)) ![i](x) | a | b |\n# heading",
]


class FixedClock:
    """`datetime` for the notes module with a fixed now(), so that output is exact."""

    @staticmethod
    def now(tz=None):
        return AT


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notes_module, "datetime", FixedClock)


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def detected(tmp_path_factory: pytest.TempPathFactory, rules) -> Path:
    """The sample incident, loaded and detected once; tests copy it before writing."""
    case = tmp_path_factory.mktemp("notes") / "case.duckdb"
    load(case, [SAMPLES / "native"], progress=False)
    detect(case, rules)
    return case


@pytest.fixture
def case(detected: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "case.duckdb"
    copy.write_bytes(detected.read_bytes())
    return copy


def finding_ids(case: Path, rule_id: str) -> list[str]:
    with connect(case) as con:
        rows = con.execute(
            "SELECT finding_id FROM findings WHERE rule_id = $r ORDER BY finding_id", {"r": rule_id}
        ).fetchall()
    return [r[0] for r in rows]


def test_cli_note_and_notes_round_trip(case: Path, clock) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    runner = CliRunner()
    args = ["note", "--case", str(case)]
    first = ["--tag", "lateral-movement", "--comment", "token read from the pod"]
    out = runner.invoke(main, [*args, "--finding", fid, *first, "--author", "ana"])
    assert (out.exit_code, out.output) == (0, f"note 1 on finding {fid} stored in {case}\n")
    out = runner.invoke(main, [*args, "--identity", "alice@example.com",
                               "--triaged", "known SRE"])  # fmt: skip
    assert out.exit_code == 1
    assert out.output == "Error: a triaged mark is for findings; this note is on an identity\n"
    out = runner.invoke(main, [*args, "--identity", "alice@example.com", "--tag", "sre",
                               "--author", "bob"])  # fmt: skip
    assert (out.exit_code, out.output) == (
        0, f"note 2 on identity alice@example.com stored in {case}\n"
    )  # fmt: skip
    out = runner.invoke(main, [*args, "--finding", fid, "--false-positive", "lab pod", "--author",
                               "ana"])  # fmt: skip
    assert out.exit_code == 0
    out = runner.invoke(main, ["notes", "--case", str(case), "--format", "jsonl"])
    assert out.exit_code == 0
    at = "2026-03-15T09:30:00Z"
    assert [json.loads(line) for line in out.output.splitlines()] == [
        {"note_id": 1, "target_kind": "finding", "target": fid, "tag": "lateral-movement",
         "comment": "token read from the pod", "mark": None, "reason": None, "author": "ana",
         "created_at": at},
        {"note_id": 2, "target_kind": "identity", "target": "alice@example.com", "tag": "sre",
         "comment": None, "mark": None, "reason": None, "author": "bob", "created_at": at},
        {"note_id": 3, "target_kind": "finding", "target": fid, "tag": None, "comment": None,
         "mark": "false_positive", "reason": "lab pod", "author": "ana", "created_at": at},
    ]  # fmt: skip
    out = runner.invoke(main, ["notes", "--case", str(case)])
    assert out.exit_code == 0
    lines = out.output.splitlines()
    assert lines[0].strip() == "3 notes"
    assert "│ 2       │ identity    │ alice@example.com" in out.output
    assert out.output.count("2026-03-15 09:30:00Z") == 3


def test_cli_refuses_what_is_not_a_note(case: Path) -> None:
    runner = CliRunner()
    args = ["note", "--case", str(case)]
    cases = {
        ("--finding", "0000000000000000", "--tag", "x"): "Error: no finding '0000000000000000' "
        "in the case (kforensics detect stores them)",
        ("--event", "nope", "--comment", "x"): "Error: no event 'nope' in the case (see the "
        "events table)",
        ("--identity", "bob"): "Error: a note needs a tag, a comment or a mark",
        ("--identity", "bob", "--tag", "two words"): "Error: tag 'two words': a tag is a word of "
        "letters, digits and _ . : / - (up to 63, starting with a letter or digit), such as "
        "lateral-movement",
        ("--identity", "bob", "--comment", "x" * (MAX_COMMENT + 1)): "Error: the comment is 4097 "
        "characters long; at most 4096 are kept",
        ("--identity", "bo\x1bb", "--tag", "x"): "Error: the identity holds the control "
        "character U+001B (after 'bo')",
    }
    for given_args, expected in cases.items():
        out = runner.invoke(main, [*args, *given_args])
        assert (out.exit_code, out.output.strip()) == (1, expected), given_args
    out = runner.invoke(main, [*args, "--tag", "x"])
    assert out.exit_code == 2 and "give one of --event, --finding or --identity" in out.output
    out = runner.invoke(main, [*args, "--finding", "x", "--triaged", "a", "--false-positive", "b"])
    assert out.exit_code == 2 and "not both" in out.output
    assert notes(case) == []  # nothing half-stored


def test_a_mark_needs_a_reason_and_a_reason_a_mark(case: Path) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    with pytest.raises(InputError, match=r"^a false_positive mark needs a reason \(why it is"):
        add_note(case, "finding", fid, mark="false_positive", reason="  ")
    with pytest.raises(InputError, match="^a reason goes with a mark"):
        add_note(case, "finding", fid, reason="why", tag="x")
    with pytest.raises(InputError, match="^mark 'closed' is not one of triaged, false_positive"):
        add_note(case, "finding", fid, mark="closed", reason="x")
    with pytest.raises(InputError, match="^target kind 'pod' is not one of event, finding"):
        add_note(case, "pod", "x", tag="x")


def test_notes_survive_a_second_load_and_a_re_detect(case: Path, tmp_path: Path, rules) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    with connect(case) as con:
        [(eid,)] = con.execute("SELECT event_id FROM events ORDER BY event_id LIMIT 1").fetchall()
    add_note(case, "finding", fid, comment="first look", author="ana")
    add_note(case, "event", eid, tag="pivot", author="ana")
    add_note(case, "identity", "system:serviceaccount:shop:storefront", tag="suspect")
    before = notes(case)
    log = tmp_path / "later.log"
    log.write_bytes(jsonl(event("later-1"), event("later-2", verb="list")))
    load(case, [log], progress=False)
    detect(case, rules)  # replaces the findings: the same finding comes back with its id
    detect(case, rules, since=datetime(2026, 1, 1, tzinfo=UTC))
    assert notes(case) == before
    assert fid in finding_ids(case, "k8s-exec-reads-sa-token")
    shown = kf.open_case(case).findings()
    assert shown.loc[shown["finding_id"] == fid, "notes"].tolist() == ["first look (ana)"]


def test_case_api_note_and_notes(case: Path) -> None:
    c = kf.open_case(case)
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    assert c.note("finding", fid, mark="triaged", reason="paged", author="ana") == 1
    assert c.note("identity", "alice@example.com", comment="SRE", author="bob") == 2
    assert kf.note(case, "finding", fid, tag="t1", author="cy") == 3
    frame = c.notes("finding")
    assert frame[["note_id", "target", "mark", "reason", "tag", "author"]].values.tolist() == [
        [1, fid, "triaged", "paged", None, "ana"],
        [3, fid, None, None, "t1", "cy"],
    ]
    assert [n["note_id"] for n in kf.notes(case, "identity")] == [2]
    table = c.query("findings_for")
    assert table["notes"].dropna().tolist() == ["[triaged: paged] (ana) | #t1 (cy)"]
    assert table["object"][table["notes"].notna()].tolist() == ["pods/payments-api-5f6c8d-7hjkq"]


def test_hostile_notes_are_stored_as_given_and_shown_as_text(case: Path) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    for text in HOSTILE:
        add_note(case, "finding", fid, comment=text, author="<b>eve</b>")
    assert [n["comment"] for n in notes(case)] == [h.strip() for h in HOSTILE]
    from kforensics.investigate.tables import html_table

    page = html_table(kf.open_case(case).table("findings_for"))
    assert "<script>" not in page and "<img" not in page and "</td></tr></table><img" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "(&lt;b&gt;eve&lt;/b&gt;)" in page


def test_false_positive_exceptions_drop_exactly_those_findings(
    case: Path, tmp_path: Path, rules
) -> None:
    everything = {f.finding_id: f for f in detect(case, rules, store=False)}
    by_rule: dict[str, list] = {}
    for f in everything.values():
        by_rule.setdefault(f.rule_id, []).append(f)
    # a rule with several findings (the others must stay), and an impersonation-free one
    marked = [by_rule["k8s-exec-reads-sa-token"][0].finding_id]
    several = next(fs for fs in by_rule.values() if len(fs) > 2 and fs[0].actor)
    marked.append(several[0].finding_id)
    for fid in marked:
        add_note(case, "finding", fid, mark="false_positive", reason="lab: *not* [real]")
    # a later triaged mark undoes an earlier false positive
    undone = several[1].finding_id
    add_note(case, "finding", undone, mark="false_positive", reason="oops")
    add_note(case, "finding", undone, mark="triaged", reason="it is real after all")
    found = false_positives(case, rules)
    assert found.skipped == []
    text = found.to_yaml()
    assert text.startswith("# Findings marked false positive in the case")
    path = tmp_path / "fp.yaml"
    path.write_text(text, encoding="utf-8")
    doc = yaml.safe_load(text)
    assert sum(len(v) for v in doc.values()) == 2
    assert all(e["reason"].endswith(": lab: *not* [real]") for v in doc.values() for e in v)
    kept = detect(case, rules, exceptions=load_exceptions(path))
    assert sorted(set(everything) - {f.finding_id for f in kept}) == sorted(marked)
    assert {f.finding_id for f in kept} <= set(everything)
    # the marks outlive the findings they dropped: the same file comes out again
    assert false_positives(case, rules).to_yaml() == text


def test_cli_notes_exceptions(case: Path) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    runner = CliRunner()
    out = runner.invoke(main, ["note", "--case", str(case), "--finding", fid,
                               "--false-positive", "lab pod", "--author", "ana"])  # fmt: skip
    assert out.exit_code == 0
    out = runner.invoke(main, ["notes", "--case", str(case), "--exceptions"])
    assert out.exit_code == 0
    doc = yaml.safe_load(out.output)
    [entry] = doc["k8s-exec-reads-sa-token"]
    assert {k: v for k, v in entry.items() if k != "reason"} == {
        "actor": "system:serviceaccount:shop:storefront",
        "namespace": "payments",
        "resource": "pods",
        "name": "payments-api-5f6c8d-7hjkq",
    }
    assert re.fullmatch(rf"finding {fid} marked false positive by ana at \S+Z: lab pod",
                        entry["reason"])  # fmt: skip


def test_a_case_of_an_additive_version_reads_without_notes(
    detected: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import duckdb

    from kforensics import case as case_module

    # no older version is additive since 6: marked as one, as the next schema may be
    monkeypatch.setattr(case_module, "ADDITIVE_FROM", {case_module.SCHEMA_VERSION - 1})
    case = tmp_path / "older.duckdb"
    case.write_bytes(detected.read_bytes())
    with duckdb.connect(str(case)) as con:
        con.execute("DROP TABLE notes")
        con.execute("UPDATE schema_version SET version = $v", {"v": case_module.SCHEMA_VERSION - 1})
    assert kf.open_case(case).findings()["notes"].isna().all()  # read-only: no notes, no error
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    assert add_note(case, "finding", fid, tag="upgraded") == 1  # writing adds the table


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=MAX_COMMENT + 50), st.text(max_size=80), st.text(max_size=600))
def test_fuzz_checks_either_accept_or_name_the_problem(comment, tag, identity) -> None:
    try:
        values = check_note("identity", identity, tag=tag or None, comment=comment or None)
    except InputError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert values["target"] == identity.strip() and 0 < len(values["target"]) <= 512
    assert values["tag"] is None or re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,62}", tag)
    assert values["comment"] is None or len(values["comment"]) <= MAX_COMMENT


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_fuzz_glob_literal_matches_only_its_text(text) -> None:
    import duckdb

    with duckdb.connect() as con:
        same, other = con.execute(
            "SELECT $t GLOB $p, ($t || 'x') GLOB $p", {"t": text, "p": glob_literal(text)}
        ).fetchall()[0]
    assert (same, other) == (True, False)


def test_notes_show_as_text_in_the_triage_report(case: Path, tmp_path: Path) -> None:
    import html

    from kforensics.reporting.run import resolve_notebook, run_report
    from tests.test_report import CHROMIUM, dump_dom

    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]  # payments-api-5f6c8d-7hjkq
    add_note(case, "finding", fid, comment=HOSTILE[0], tag="lateral-movement", author="ana")
    add_note(case, "finding", fid, comment=HOSTILE[1], author="ana")
    add_note(case, "identity", "system:serviceaccount:shop:storefront", comment=HOSTILE[2])
    result = run_report(resolve_notebook("01_triage").path, case, {}, tmp_path / "out")
    page = result.html.read_text(encoding="utf-8")
    assert "<script>document.title" not in page and "<img src=x" not in page
    assert "<strong>bold" not in page and "<h1>heading" not in page
    escaped = [html.escape(h.strip(), quote=False) for h in HOSTILE]
    # the Notes section lists each note; the findings table has the finding's beside it
    assert f"<td>{escaped[0]}</td>" in page and f"<td>{escaped[1]}</td>" in page
    assert html.escape(HOSTILE[2].strip().replace("\n", "\\x0a"), quote=False) in page
    assert f"#lateral-movement {escaped[0]} (ana) | {escaped[1]} (ana)" in page
    if CHROMIUM is not None:
        dom = dump_dom(result.html, tmp_path)
        assert "pwned" not in re.findall(r"<title>(.*?)</title>", dom)[0]
        assert 'id="pwned"' not in dom


def exec_event(audit_id: str, **over) -> dict:
    """An exec into shop/web-1 by alice (the k8s-pod-exec rule's subject), fields overridden."""
    return event(
        audit_id,
        verb="create",
        requestURI="/api/v1/namespaces/shop/pods/web-1/exec?command=sh",
        objectRef={"resource": "pods", "subresource": "exec", "namespace": "shop",
                   "name": "web-1", "apiVersion": "v1"},
        **over,
    )  # fmt: skip


def test_an_entry_that_also_matches_an_impersonating_finding_says_so(tmp_path, rules) -> None:
    log = tmp_path / "audit.log"
    log.write_bytes(jsonl(exec_event("own"), exec_event("as", impersonatedUser={"username": "b*"})))
    case = tmp_path / "case.duckdb"
    load(case, [log], progress=False)
    found = {
        f.impersonated: f.finding_id for f in detect(case, rules) if f.rule_id == "k8s-pod-exec"
    }
    assert set(found) == {None, "b*"}
    add_note(case, "finding", found["b*"], mark="false_positive", reason="bob's drill")
    fp = false_positives(case, rules)
    assert fp.entries == {"k8s-pod-exec": [{
        "actor": "alice", "impersonated": "b[*]", "namespace": "shop", "resource": "pods",
        "name": "web-1", "reason": fp.entries["k8s-pod-exec"][0]["reason"],
    }]}  # fmt: skip
    assert fp.broader == []  # alice as b* is narrower than alice: nothing else matches
    path = tmp_path / "fp.yaml"
    path.write_text(fp.to_yaml(), encoding="utf-8")
    kept = {f.finding_id for f in detect(case, rules, exceptions=load_exceptions(path))}
    assert found[None] in kept and found["b*"] not in kept
    add_note(case, "finding", found[None], mark="false_positive", reason="alice's own")
    add_note(case, "finding", found["b*"], mark="triaged", reason="not a drill after all")
    detect(case, rules)  # the check is against the stored findings: both again
    fp = false_positives(case, rules)
    assert fp.broader == [f"{found[None]} also matches finding {found['b*']}"]
    assert f"# the entry for {found[None]} also matches finding {found['b*']}\n" in fp.to_yaml()


def test_event_notes_show_beside_the_evidence_rows(case: Path) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]
    with connect(case) as con:
        [(eid,)] = con.execute(
            "SELECT evidence[1].event_id FROM findings WHERE finding_id = $f", {"f": fid}
        ).fetchall()
    add_note(case, "event", eid, tag="first-step", comment="<b>here</b>", author="ana")
    rows = kf.open_case(case).query("finding_evidence")
    noted = rows[rows["notes"].notna()]
    assert set(noted["notes"]) == {"#first-step <b>here</b> (ana)"}
    assert fid in noted["finding_id"].tolist()


def test_the_note_widget_saves_and_names_a_bad_value_beside_its_button(case: Path) -> None:
    from kforensics.reporting.note_widget import NoteForm

    form = NoteForm(kf.open_case(case))
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]
    assert fid in form.target.options  # the findings are offered, most severe first
    assert form.box.children[-1].children == (form.button, form.message)
    form.target.value, form.mark.value = fid, "false_positive"
    form.button.click()
    assert form.message.value == "a false_positive mark needs a reason (why it is false positive)"
    assert notes(case) == []
    form.reason.value, form.tag.value, form.author.value = "lab pod", "lab", "ana"
    form.button.click()
    assert form.message.value == "note 1 stored"
    assert (form.reason.value, form.tag.value, form.mark.value) == ("", "", "")  # ready again
    [stored] = notes(case)
    fields = ("target", "mark", "reason", "tag", "author")
    assert [stored[k] for k in fields] == [fid, "false_positive", "lab pod", "lab", "ana"]
    form.kind.value = "identity"
    assert "system:serviceaccount:shop:storefront" in form.target.options
    form.target.value, form.comment.value = "x" * 513, "<b>who?</b>"
    assert form.save() is None
    assert form.message.value == "the identity is 513 characters long; at most 512 are kept"


def test_the_note_widget_sends_a_text_on_leaving_its_box_not_per_keystroke(case: Path) -> None:
    from kforensics.reporting.note_widget import NoteForm

    form = NoteForm(kf.open_case(case))
    boxes = (form.target, form.tag, form.comment, form.reason, form.author)
    assert [box.continuous_update for box in boxes] == [False] * 5


def test_a_rebuild_with_load_replace_keeps_the_notes(case: Path, rules) -> None:
    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]
    with connect(case) as con:
        [(eid,)] = con.execute("SELECT event_id FROM events ORDER BY event_id LIMIT 1").fetchall()
    add_note(case, "finding", fid, mark="false_positive", reason="lab pod", author="ana")
    add_note(case, "event", eid, comment="pivot", author="ana")
    before = notes(case)
    out = CliRunner().invoke(
        main, ["load", str(SAMPLES / "native"), "--case", str(case), "--replace", "--no-progress"]
    )
    assert out.exit_code == 0, out.output
    assert "replaced the earlier case" in out.output
    assert notes(case) == before  # the same logs give the same event id, and detect the finding's
    detect(case, rules)
    assert fid in finding_ids(case, "k8s-exec-reads-sa-token")


def test_a_rebuild_of_an_older_case_keeps_its_notes_under_the_new_event_ids(case: Path) -> None:
    import duckdb

    from kforensics.ingest.original import originals

    fid = finding_ids(case, "k8s-exec-reads-sa-token")[0]
    with connect(case) as con:
        [(eid,)] = con.execute("SELECT event_id FROM events ORDER BY event_id LIMIT 1").fetchall()
        text = originals(con, [eid])[eid].decode()
    add_note(case, "finding", fid, mark="false_positive", reason="lab pod", author="ana")
    add_note(case, "event", eid, comment="pivot", author="ana")
    add_note(case, "event", eid, comment="gone", author="ana")
    with duckdb.connect(str(case)) as con:  # as version 5 wrote it: an md5 id, the text in raw
        con.execute("UPDATE events SET event_id = 'md5-id', raw = $t WHERE event_id = $e",
                    {"t": text, "e": eid})  # fmt: skip
        con.execute("UPDATE notes SET target = 'md5-id' WHERE comment = 'pivot'")
        con.execute("UPDATE notes SET target = 'no-such-event' WHERE comment = 'gone'")
        con.execute("UPDATE schema_version SET version = 5")
    out = CliRunner().invoke(
        main, ["load", str(SAMPLES / "native"), "--case", str(case), "--replace", "--no-progress"]
    )
    assert out.exit_code == 0, out.output
    assert "kept 2 notes of the earlier case\n" in out.output
    assert "note 3: its event is not in the new case (not kept)\n" in out.output
    kept = {(n["target_kind"], n["target"], n["comment"]) for n in notes(case)}
    assert kept == {("finding", fid, None), ("event", eid, "pivot")}
