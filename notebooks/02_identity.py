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
# ## What did the rules find about this identity?

# %%
show(inv.findings_for(con, identity=identity, **window))

# %% [markdown]
# ## When was it active?
#
# Its requests over time by outcome, with its findings.

# %%
show(charts.timeline(con, identity=identity, **window))

# %% [markdown]
# ## From where, with what client?
#
# Source IPs and user agents with first and last seen: a service account token used from a new
# address or by `curl`/`kubectl` was probably stolen.

# %%
show(inv.identity_sources(con, identity, **window))

# %% [markdown]
# ## What did it touch?

# %%
show(inv.resources_touched(con, identity, **window))

# %% [markdown]
# ## How did its permissions change?
#
# RBAC objects it created or changed, and bindings whose subjects include it (who granted it
# what).

# %%
show(inv.permission_changes(con, identity, **window))

# %% [markdown]
# ## What did it run in pods?
#
# exec, attach and port-forward, with the decoded command (secrets in commands are redacted).

# %%
show(inv.exec_sessions(con, identity, **window))

# %% [markdown]
# ## Its requests in order
#
# The first 500 (undated ones last), each with its evidence `file:line` and quality flags.
# `relation` marks its own requests (`own`, or `own, as ...` when it impersonated another
# identity) and those others made as it (`by ..., as this identity`).

# %%
show(inv.identity_timeline(con, identity, **window))

# %% [markdown]
# ## Explore interactively
#
# Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
# identity, namespace and finding level; the chart and tables below them re-render on every
# change. With `interactive = False` (papermill, reports) nothing here runs.

# %%
if interactive:
    from kforensics.report.explore import explore

    def requests_in_order(con, who, where, win):
        if who:
            show(inv.identity_timeline(con, who, **win))

    explore(con, since, until, identity=identity, extra=requests_in_order)

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
