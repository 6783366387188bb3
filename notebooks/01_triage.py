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
# Start here: what was examined, the suspects' steps in time order, then volume and findings
# over time, the most active and most refused identities, what appeared for the first time.
# Set `case` (and optionally the window `since`/`until`, ISO 8601 UTC) in the parameters cell.

# %% tags=["parameters"]
# Relative to notebooks/, where Jupyter starts the kernel (kforensics report sets case).
case = "../out/demo.duckdb"
since = ""
until = ""
interactive = False
remediation_out = ""
# True records the plan in the case for the watch rules (as `kforensics remediate` does); a
# scheduled report leaves it False, or each run would move the watch's start.
record_remediation = False
# A sensitive-workloads file (`kforensics report --sensitive FILE`); empty: sensitive.yaml
# beside the case, else what the last detect stored in it.
sensitive = ""

# %%
import tempfile

import kforensics as kf

c = kf.open_case(case, since=since, until=until)  # read-only, holding no lock between calls

# %% [markdown]
# ## What this report examined
#
# The case file, its sources (sha256, records, events loaded and still in the case), the time
# the case covers and the window of this report, the rules and exceptions of the last
# `kforensics detect` (the findings below are its findings), and when this was generated.

# %%
kf.show_header(c)

# %% [markdown]
# ## What happened: each suspect's steps in time order
#
# A suspect is a person or workload identity that a finding at medium or above names as the
# actor (the identities the containment plan below contains). Each step is one request that
# findings stand on (low and above): what the rules call it, the request and where, its ATT&CK
# techniques (linked to their pages), the worst level, and its evidence `file:line` (linked to
# the evidence rows below). Follow a suspect further in `02_identity`.

# %%
kf.show_storyline(c)

# %% [markdown]
# ## Sensitive workloads: who reached into them, and the fences around them
#
# The workloads declared sensitive (`sensitive.yaml`: namespaces, label selectors, secrets,
# workloads) as resolved against the pods the log recorded, with why each is covered. Then
# every request in the window that reached into one of them or into what it holds (exec,
# attach, port-forward, proxy, logs, ephemeral containers, changes to its spec or labels, reads
# of its secrets and configmaps, deletes), by identity and kind of access, and the first-time
# pairs: an identity doing what it never did to that workload in the baseline (the case before
# the detect's `--baseline-until` or `--since`, and a `--baseline` case). The rules' findings on
# these workloads rank above the same request elsewhere (`[sensitive]`, raised levels). Then the
# candidates the case suggests (many secrets, privileged, kube-system, LoadBalancer backends):
# confirm them by adding them to `sensitive.yaml`. Last, a proposed NetworkPolicy fence per
# workload: ingress only from the clients the case shows, egress to DNS and its known
# dependencies, each allow saying what it was inferred from (an audit log records no
# packets), validated and simulated.

# %%
kf.show_sensitive(c, sensitive)

# %% [markdown]
# ## When did things happen?
#
# Requests over time by outcome, with every finding placed at its first event and coloured by
# level. A spike of 4xx is often discovery (an identity probing what it may do); pivot to the
# identity in `02_identity`.

# %%
kf.show(c.chart("timeline"))

# %% [markdown]
# ## What did the rules find?
#
# Findings by level and by ATT&CK tactic, then the tactic x technique matrix: each cell is
# coloured by its worst finding's level and counts its findings (info findings, activity rather
# than suspicion, are left out: `c.chart("attack_matrix", include_info=True)` has them); a cell
# opens the technique's ATT&CK page. High findings are the first to read.

# %%
kf.show(c.query("findings_summary"))
kf.show(c.chart("attack_matrix"))

# %% [markdown]
# ## Who was active?
#
# The busiest identities (requests, verbs, denials, first and last seen), then identity x verb.
# `identity` is the identity a request was authorised as; under impersonation (`kubectl --as`)
# `impersonated_by` names who sent it. Control-plane identities dominate volume; look for
# service accounts or users with denials or unusual verbs, and for impersonation of privileged
# identities.

# %%
kf.show(c.query("top_identities"))
kf.show(c.chart("identity_verb_heatmap"))
kf.show(c.query("who_did_what", limit=30))

# %% [markdown]
# ## Who was refused?
#
# 401 and 403 responses by identity and resource: permission enumeration shows as many denials
# across resources from one identity. A refused impersonated request is the impersonated
# identity's refusal (`impersonated_by`: who sent it).

# %%
kf.show(c.query("denials"))

# %% [markdown]
# ## What is new?
#
# Identities, source IPs and user agents first seen inside the window (set `since` to the start
# of the suspicious period to compare with what came before).

# %%
kf.show(c.query("new_in_window"))

# %% [markdown]
# ## Findings, most severe first
#
# Each cites its first evidence `file:line` (the file as given to `kforensics load`), linked to
# all its evidence rows below, and lists the quality flags of its events; under impersonation
# `actor` sent the requests and `impersonated` is whom they were made as. Pivot on either
# identity (`02_identity`) or the namespace (`03_workload`).

# %%
kf.show_findings(c)

# %% [markdown]
# ## The evidence behind each finding
#
# For every finding above, the events it stands on (the first 20 of each): `file:line`, audit
# ID, time, verb, object and response code, each findable in the original log.

# %%
kf.show_evidence(c)

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
kf.show(c.query("quality_summary"))

# %% [markdown]
# ## Your own question, in SQL
#
# The case is a DuckDB database (tables and views in the README's schema; `requests` counts each
# request once). `c.sql` runs one SELECT and returns a pandas DataFrame; every value comes in as
# a `$name` parameter, never formatted into the SQL, since every field of a log is
# attacker-controlled. Here: the verbs and resources refused most often, as a table and as an
# Altair chart drawn from the DataFrame.

# %%
import altair as alt

refused = c.sql(
    "SELECT verb, resource, count(*) AS requests FROM requests"
    " WHERE code >= $code GROUP BY verb, resource ORDER BY requests DESC, verb, resource LIMIT 15",
    code=400,
)
kf.show(refused)
kf.show(
    alt.Chart(refused, title="Refused requests by verb and resource")
    .mark_bar()
    .encode(x="requests:Q", y=alt.Y("resource:N", sort="-x"), color="verb:N")
)

# %% [markdown]
# ## Explore interactively
#
# Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
# identity, namespace and finding level (that level and above). Everything below them follows
# every filter: requests follow time, identity and namespace, findings all four. A text box
# applies on Enter or when you leave it; a value that cannot be used is named beside its box and
# leaves what is shown as it was. With `interactive = False` (papermill, reports) nothing here
# runs.

# %%
if interactive:
    kf.explore(c)

# %% [markdown]
# ## Notes
#
# The analysts' notes kept in the case, oldest first: tags, comments and triaged or
# false-positive marks (each with its reason) on events, findings and identities, with author
# and time. They come from `kforensics note` or, with `interactive = True`, the widget below
# (a bad value is named beside its Save button). Load and detect never touch them; each
# finding's own notes are also in the `notes` column of the findings tables.
# `kforensics notes --case CASE --exceptions` writes the false-positive marks as an exceptions
# file for `kforensics detect --exceptions`.

# %%
kf.show(c.notes())
if interactive:
    kf.note_widget(c)

# %% [markdown]
# ## Containment: what to apply, step by step, and what is watched after
#
# `c.remediate` (`kf.remediate` for a case file) turns the case's stored findings (the last
# `kforensics detect`) into a containment plan in the order a responder works: contain the
# network (quarantine of every pod the attacker used or entered, restored and pinned policies,
# egress blocks, default deny), cut the access (RBAC it created or was granted; least privilege
# from what it did before), evict (its workloads; cordon the nodes it reached), rotate (secrets
# it read, tokens, node and cloud credentials), then watch. Every object is validated and the
# NetworkPolicies simulated; invalid objects are kept apart in `invalid/`. It writes YAML,
# `apply.sh` and `REPORT.md` to `remediation_out` (a temporary folder when empty). With
# `record_remediation` it records the plan in the case, and later `kforensics detect` runs raise
# high findings when any of it is undone. Review `REPORT.md` before applying anything.

# %%
out_dir = remediation_out or tempfile.mkdtemp(prefix="kforensics-remediation-")
kf.show_remediation(c.remediate(out_dir, record=record_remediation), out_dir)
