# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Triage: what happened in this case, when, and who did it?
#
# Start here: volume and findings over time, the most active and most refused identities, what
# appeared for the first time. Set `case` (and optionally the window `since`/`until`, ISO 8601
# UTC) in the parameters cell.

# %% tags=["parameters"]
# Relative to notebooks/, where Jupyter starts the kernel (kforensics report sets case).
case = "../out/demo.duckdb"
since = ""
until = ""
interactive = False
remediation_out = ""

# %%
import tempfile
from pathlib import Path

import kforensics
from kforensics.detect.run import stored_findings
from kforensics.investigate import charts
from kforensics.investigate import queries as inv
from kforensics.netpol.remediation import remediate_case
from kforensics.report.display import show, show_remediation

con = kforensics.connect(case)  # read-only
window = {"since": since or None, "until": until or None}

# %% [markdown]
# ## When did things happen?
#
# Requests over time by outcome, with every finding placed at its first event and coloured by
# level. A spike of 4xx is often discovery (an identity probing what it may do); pivot to the
# identity in `02_identity`.

# %%
show(charts.timeline(con, **window))
show(charts.outcomes_over_time(con, **window))

# %% [markdown]
# ## What did the rules find?
#
# Findings by level and by ATT&CK tactic, then the tactic x technique matrix. High findings are
# the first to read.

# %%
show(inv.findings_summary(con, **window))
show(charts.attack_matrix(con, **window))

# %% [markdown]
# ## Who was active?
#
# The busiest identities (requests, verbs, denials, first and last seen), then identity x verb.
# `identity` is the identity a request was authorised as; under impersonation (`kubectl --as`)
# `impersonated_by` names who sent it. Control-plane identities dominate volume; look for
# service accounts or users with denials or unusual verbs, and for impersonation of privileged
# identities.

# %%
show(inv.top_identities(con, **window))
show(charts.identity_verb_heatmap(con, **window))
show(inv.who_did_what(con, **window, limit=30))

# %% [markdown]
# ## Who was refused?
#
# 401 and 403 responses by identity and resource: permission enumeration shows as many denials
# across resources from one identity. A refused impersonated request is the impersonated
# identity's refusal (`impersonated_by`: who sent it).

# %%
show(inv.denials(con, **window))

# %% [markdown]
# ## What is new?
#
# Identities, source IPs and user agents first seen inside the window (set `since` to the start
# of the suspicious period to compare with what came before).

# %%
show(inv.new_in_window(con, **window))

# %% [markdown]
# ## Findings, most severe first
#
# Each cites its first evidence `file:line` (the file as given to `kforensics load`) and lists
# the quality flags of its events; under impersonation `actor` sent the requests and
# `impersonated` is whom they were made as. Pivot on either identity (`02_identity`) or the
# namespace (`03_workload`).

# %%
show(inv.findings_for(con, **window))

# %% [markdown]
# ## How much do the findings stand on flagged events?
#
# Events the loader kept although they lack something (no audit ID, no timestamp, no stage, no
# user...) are evidence like any other, and flagged. Per flag: the events that carry it and the
# findings that rest on at least one of them. `no-timestamp` events are undated: they could be
# from any time, so every window keeps them, and this row counts every undated event of the
# case. A finding on flagged events deserves a look at its evidence before it is believed or
# dismissed.

# %%
show(inv.quality_summary(con, **window))

# %% [markdown]
# ## Your own question, in SQL
#
# The case is a DuckDB database (tables and views in the README's schema; `requests` counts each
# request once). Ask it anything: every value comes in as a `$name` parameter, never formatted
# into the SQL, since every field of a log is attacker-controlled. Here: the verbs and resources
# refused most often, as a table and as an Altair chart.

# %%
import altair as alt

refused = con.sql(
    "SELECT verb, resource, count(*) AS requests FROM requests"
    " WHERE code >= $code GROUP BY verb, resource ORDER BY requests DESC, verb, resource LIMIT 15",
    params={"code": 400},
).to_arrow_table()
show(refused)
show(
    alt.Chart(alt.Data(values=refused.to_pylist()), title="Refused requests by verb and resource")
    .mark_bar()
    .encode(x="requests:Q", y=alt.Y("resource:N", sort="-x"), color="verb:N")
)

# %% [markdown]
# ## Explore interactively
#
# Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
# identity, namespace and finding level; the chart and tables below them re-render on every
# change. With `interactive = False` (papermill, reports) nothing here runs.

# %%
if interactive:
    from kforensics.report.explore import explore

    def busiest(con, who, where, win):
        show(inv.who_did_what(con, **win, limit=30))

    explore(con, since, until, extra=busiest)

# %% [markdown]
# ## Remediation: NetworkPolicies that contain what the findings show
#
# `remediate_case` turns the case's stored findings (the last `kforensics detect`) into proposed
# NetworkPolicies (quarantine, restore, pinned namespace selectors, egress blocks, default deny),
# validates every object and simulates the connections that change. It writes YAML, `apply.sh`
# and `REPORT.md` to `remediation_out` (a temporary folder when empty) and opens the case
# read-only. Review `REPORT.md` before applying anything.

# %%
out_dir = Path(remediation_out or tempfile.mkdtemp(prefix="kforensics-remediation-"))
remediation = remediate_case(Path(case), out_dir, findings=stored_findings(con))
show_remediation(remediation, out_dir)
