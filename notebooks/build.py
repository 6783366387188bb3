"""Write the investigation notebooks (without outputs): `python notebooks/build.py [OUT_DIR]`.

The notebooks are generated so that they stay reviewable code: every computation is a call into
kforensics (`kforensics.investigate`, `kforensics.charts`), every table goes through
`html_table` (all cells escaped), and the first code cell is the papermill `parameters` cell.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
IDENTITY = "system:serviceaccount:shop:storefront"
NAMESPACE = "shop"

IMPORTS = """\
import tempfile
from pathlib import Path

from IPython.display import HTML, display

import kforensics
from kforensics.investigate import charts
from kforensics.investigate import queries as inv
from kforensics.detect.run import stored_findings
from kforensics.investigate.tables import html_table, remediation_html
from kforensics.netpol.remediation import remediate_case

con = kforensics.connect(case)  # read-only
window = {"since": since or None, "until": until or None}"""

INTERACTIVE_MD = """\
## Explore interactively

Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
identity, namespace and finding level; the chart and tables below them re-render on every
change. With `interactive = False` (papermill, reports) nothing here runs."""

INTERACTIVE = """\
if interactive:
    import ipywidgets as widgets

    top = inv.top_identities(con, limit=100)
    # both identities of an impersonated request, each once
    identities = top.column("identity").to_pylist() + top.column("impersonated_by").to_pylist()
    levels = ["", "critical", "high", "medium", "low", "info"]
    controls = {{
        "w_since": widgets.Text(value=since, description="since"),
        "w_until": widgets.Text(value=until, description="until"),
        "w_identity": widgets.Combobox(
            value={identity},
            options=list(dict.fromkeys(i for i in identities if i)),
            description="identity",
        ),
        "w_namespace": widgets.Text(value={namespace}, description="namespace"),
        "w_level": widgets.Dropdown(options=levels, value="", description="level"),
    }}

    def render(w_since, w_until, w_identity, w_namespace, w_level):
        try:
            win = {{"since": w_since or None, "until": w_until or None}}
            who, where = w_identity or None, w_namespace or None
            display(charts.timeline(con, identity=who, **win))
            found = inv.findings_for(con, identity=who, namespace=where, level=w_level, **win)
            display(HTML(html_table(found)))
{extra}
        except ValueError as exc:  # an unreadable time: say so, keep the widgets alive
            display(HTML(html_table([{{"error": str(exc)}}])))

    output = widgets.interactive_output(render, controls)
    display(widgets.VBox(list(controls.values())), output)"""

REMEDIATION_MD = """\
## Remediation: NetworkPolicies that contain what the findings show

`remediate_case` turns the case's stored findings (the last `kforensics detect`) into proposed
NetworkPolicies (quarantine, restore, pinned namespace selectors, egress blocks, default deny),
validates every object and simulates the connections that change. It writes YAML, `apply.sh`
and `REPORT.md` to `remediation_out` (a temporary folder when empty) and opens the case
read-only. Review `REPORT.md` before applying anything."""

REMEDIATION = """\
out_dir = Path(remediation_out or tempfile.mkdtemp(prefix="kforensics-remediation-"))
files, remedies, simulation, errors = remediate_case(
    Path(case), out_dir, findings=stored_findings(con)
)
display(HTML(html_table([{"remediation written to": str(out_dir)}])))
display(HTML(remediation_html(files, remedies, simulation, errors)))"""


def params(**entity: str) -> str:
    # Relative to notebooks/, where Jupyter starts the kernel (kforensics report sets case).
    lines = ['case = "../out/demo.duckdb"', 'since = ""', 'until = ""']
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in entity.items()]
    lines += ["interactive = False", 'remediation_out = ""']
    return "\n".join(lines)


def show(call: str) -> str:
    return f"display(HTML(html_table({call})))"


def notebook(
    out: Path, stem: str, question: str, parameters: str, sections: list, extra: str, **ent
) -> None:
    cells = [new_markdown_cell(question), new_code_cell(parameters), new_code_cell(IMPORTS)]
    cells[1].metadata["tags"] = ["parameters"]
    for text, code in sections:
        cells += [new_markdown_cell(text), new_code_cell(code)]
    interactive = INTERACTIVE.format(
        identity=ent.get("identity", '""'), namespace=ent.get("namespace", '""'), extra=extra
    )
    cells += [new_markdown_cell(INTERACTIVE_MD), new_code_cell(interactive)]
    cells += [new_markdown_cell(REMEDIATION_MD), new_code_cell(REMEDIATION)]
    for n, cell in enumerate(cells):
        cell.id = f"{stem.split('_')[0]}-{n:02d}"
    nb = new_notebook(
        cells=cells,
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.validate(nb)
    (out / f"{stem}.ipynb").write_text(nbformat.writes(nb) + "\n", encoding="utf-8")


TRIAGE = [
    (
        "## When did things happen?\n\nRequests over time by outcome, with every finding "
        "placed at its first event and coloured by level. A spike of 4xx is often discovery "
        "(an identity probing what it may do); pivot to the identity in `02_identity`.",
        "display(charts.timeline(con, **window))\n"
        "display(charts.outcomes_over_time(con, **window))",
    ),
    (
        "## What did the rules find?\n\nFindings by level and by ATT&CK tactic, then the "
        "tactic x technique matrix. High findings are the first to read.",
        show("inv.findings_summary(con, **window)")
        + "\ndisplay(charts.attack_matrix(con, **window))",
    ),
    (
        "## Who was active?\n\nThe busiest identities (requests, verbs, denials, first and last "
        "seen), then identity x verb. `identity` is the identity a request was authorised as; "
        "under impersonation (`kubectl --as`) `impersonated_by` names who sent it. "
        "Control-plane identities dominate volume; look for service accounts or users with "
        "denials or unusual verbs, and for impersonation of privileged identities.",
        show("inv.top_identities(con, **window)")
        + "\ndisplay(charts.identity_verb_heatmap(con, **window))\n"
        + show("inv.who_did_what(con, **window, limit=30)"),
    ),
    (
        "## Who was refused?\n\n401 and 403 responses by identity and resource: permission "
        "enumeration shows as many denials across resources from one identity. A refused "
        "impersonated request is the impersonated identity's refusal (`impersonated_by`: who "
        "sent it).",
        show("inv.denials(con, **window)"),
    ),
    (
        "## What is new?\n\nIdentities, source IPs and user agents first seen inside the window "
        "(set `since` to the start of the suspicious period to compare with what came before).",
        show("inv.new_in_window(con, **window)"),
    ),
    (
        "## Findings, most severe first\n\nEach cites its first evidence `file:line` (the file "
        "as given to `kforensics load`) and lists the quality flags of its events; under "
        "impersonation `actor` sent the requests and `impersonated` is whom they were made as. "
        "Pivot on either identity (`02_identity`) or the namespace (`03_workload`).",
        show("inv.findings_for(con, **window)"),
    ),
    (
        "## How much do the findings stand on flagged events?\n\nEvents the loader kept "
        "although they lack something (no audit ID, no timestamp, no stage, no user...) are "
        "evidence like any other, and flagged. Per flag: the events that carry it and the "
        "findings that rest on at least one of them. `no-timestamp` events are undated: they "
        "could be from any time, so every window keeps them, and this row counts every undated "
        "event of the case. A finding on flagged events deserves a look at its evidence before "
        "it is believed or dismissed.",
        show("inv.quality_summary(con, **window)"),
    ),
]

IDENTITY_SECTIONS = [
    (
        "## What did the rules find about this identity?",
        show("inv.findings_for(con, identity=identity, **window)"),
    ),
    (
        "## When was it active?\n\nIts requests over time by outcome, with its findings.",
        "display(charts.timeline(con, identity=identity, **window))",
    ),
    (
        "## From where, with what client?\n\nSource IPs and user agents with first and last "
        "seen: a service account token used from a new address or by `curl`/`kubectl` was "
        "probably stolen.",
        show("inv.identity_sources(con, identity, **window)"),
    ),
    (
        "## What did it touch?",
        show("inv.resources_touched(con, identity, **window)"),
    ),
    (
        "## How did its permissions change?\n\nRBAC objects it created or changed, and bindings "
        "whose subjects include it (who granted it what).",
        show("inv.permission_changes(con, identity, **window)"),
    ),
    (
        "## What did it run in pods?\n\nexec, attach and port-forward, with the decoded command "
        "(secrets in commands are redacted).",
        show("inv.exec_sessions(con, identity, **window)"),
    ),
    (
        "## Its requests in order\n\nThe first 500 (undated ones last), each with its "
        "evidence `file:line` and quality flags. `relation` marks its own requests (`own`, or "
        "`own, as ...` when it impersonated another identity) and those others made as it "
        "(`by ..., as this identity`).",
        show("inv.identity_timeline(con, identity, **window)"),
    ),
]

WORKLOAD_SECTIONS = [
    (
        "## What did the rules find in this namespace?",
        show("inv.findings_for(con, namespace=namespace, **window)"),
    ),
    (
        "## Who touched it?\n\nIdentity x verb x resource in the namespace (or on the pod).",
        show("inv.workload_activity(con, namespace, pod or None, **window)"),
    ),
    (
        "## Who ran commands in its pods?",
        show("inv.workload_exec(con, namespace, pod or None, **window)"),
    ),
    (
        "## Which secrets were read, and by whom?\n\nNames and counts only, never values; "
        "cluster-wide lists are included since they read this namespace too.",
        show("inv.secrets_read(con, namespace, **window)"),
    ),
    (
        "## Did its isolation change?\n\nNetworkPolicy writes, and namespace or pod label "
        "changes with the labels before (when recorded) and after: a relabel can move the "
        "namespace into another policy's selector.",
        show("inv.policy_and_label_changes(con, namespace, **window)"),
    ),
    (
        "## The whole case, for context",
        "display(charts.timeline(con, **window))",
    ),
]


def main(out: Path = HERE) -> None:
    """Write the three notebooks into `out` (default: this folder)."""
    out.mkdir(parents=True, exist_ok=True)
    notebook(
        out,
        "01_triage",
        "# Triage: what happened in this case, when, and who did it?\n\n"
        "Start here: volume and findings over time, the most active and most refused "
        "identities, what appeared for the first time. Set `case` (and optionally the window "
        "`since`/`until`, ISO 8601 UTC) in the parameters cell.",
        params(),
        TRIAGE,
        "            display(HTML(html_table(inv.who_did_what(con, **win, limit=30))))",
    )
    notebook(
        out,
        "02_identity",
        "# Identity: what did this identity do, from where, and with which rights?\n\n"
        "Everything one user or service account did in the case: findings, sources, "
        "resources, permission changes and commands run in pods. Requests others made as it "
        "(impersonation, `kubectl --as`) are included and marked (`relation`, "
        "`impersonated_by`): they ran with its rights.",
        params(identity=IDENTITY),
        IDENTITY_SECTIONS,
        "            if who:\n"
        "                display(HTML(html_table(inv.identity_timeline(con, who, **win))))",
        identity="identity",
    )
    notebook(
        out,
        "03_workload",
        "# Workload: who touched this namespace (or pod), and was its isolation changed?\n\n"
        "Who acted on the namespace, who ran commands in its pods, which secrets were read, "
        "and how its NetworkPolicies and labels changed.",
        params(namespace=NAMESPACE, pod=""),
        WORKLOAD_SECTIONS,
        "            if where:\n"
        "                display(HTML(html_table(inv.workload_activity(con, where, **win))))",
        namespace="namespace",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
