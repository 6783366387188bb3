# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Identity: what did this identity do, from where, and with which rights?
#
# Everything one user or service account did in the case: findings, sources, resources,
# permission changes and commands run in pods. Requests others made as it (impersonation,
# `kubectl --as`) are included and marked (`relation`, `impersonated_by`): they ran with its
# rights.

# %% tags=["parameters"]
# Relative to notebooks/, where Jupyter starts the kernel (kforensics report sets case).
case = "../out/demo.duckdb"
since = ""
until = ""
identity = "system:serviceaccount:shop:storefront"
interactive = False
remediation_out = ""
# True records the plan in the case for the watch rules (as `kforensics remediate` does); a
# scheduled report leaves it False, or each run would move the watch's start.
record_remediation = False

# %%
import tempfile

import kforensics as kf

c = kf.open_case(case, since=since, until=until)  # read-only, holding no lock between calls

# %% [markdown]
# ## What this report examined
#
# The case file, its sources (sha256, records, events loaded and still in the case), the time
# the case covers and the window of this report, the rules and exceptions of the last
# `kforensics detect`, and when this was generated.

# %%
kf.show_header(c)

# %% [markdown]
# ## Its story, step by step
#
# Each step is one request its findings (low and above) stand on, in time order: what the rules
# call it, the request and where, its ATT&CK techniques (linked to their pages), the worst
# level, and its evidence `file:line` (linked to the evidence rows below).

# %%
kf.show_storyline(c, identity=identity)

# %% [markdown]
# ## What did the rules find about this identity?
#
# Its findings, most severe first, each linked to its evidence rows below.

# %%
kf.show_findings(c, identity=identity)

# %% [markdown]
# ## When was it active?
#
# Its requests over time by outcome, with its findings.

# %%
kf.show(c.chart("timeline", identity=identity))

# %% [markdown]
# ## From where, with what client?
#
# Source IPs and user agents with first and last seen: a service account token used from a new
# address or by `curl`/`kubectl` was probably stolen.

# %%
kf.show(c.query("identity_sources", identity=identity))

# %% [markdown]
# ## What did it touch?

# %%
kf.show(c.query("resources_touched", identity=identity))

# %% [markdown]
# ## How did its permissions change?
#
# RBAC objects it created or changed, and bindings whose subjects include it (who granted it
# what).

# %%
kf.show(c.query("permission_changes", identity=identity))

# %% [markdown]
# ## What did it run in pods?
#
# exec, attach and port-forward, with the decoded command (secrets in commands are redacted).

# %%
kf.show(c.query("exec_sessions", identity=identity))

# %% [markdown]
# ## Its requests in order
#
# The first 500 (undated ones last), each with its evidence `file:line` and quality flags.
# `relation` marks its own requests (`own`, or `own, as ...` when it impersonated another
# identity) and those others made as it (`by ..., as this identity`).

# %%
kf.show(c.query("identity_timeline", identity=identity))

# %% [markdown]
# ## The evidence behind its findings
#
# For every finding above, the events it stands on (the first 20 of each): `file:line`, audit
# ID, time, verb, object and response code.

# %%
kf.show_evidence(c, identity=identity)

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

    def requests_in_order(view, who, where, min_level):
        if who:
            kf.show(view.query("identity_timeline", identity=who, namespace=where))

    kf.explore(c, identity=identity, extra=requests_in_order)

# %% [markdown]
# ## Notes on this identity
#
# What analysts noted about this identity (`kforensics note --identity`), oldest first. With
# `interactive = True`, the widget below notes it, one of its findings or an event (a bad
# value is named beside its Save button); every note is kept in the case.

# %%
kf.show(c.notes("identity", identity))
if interactive:
    kf.note_widget(c, "identity", identity)

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
