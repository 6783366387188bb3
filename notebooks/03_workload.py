# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Workload: who touched this namespace (or pod), and was its isolation changed?
#
# Who acted on the namespace, who ran commands in its pods, which secrets were read, and how its
# NetworkPolicies and labels changed.

# %% tags=["parameters"]
# Relative to notebooks/, where Jupyter starts the kernel (kforensics report sets case).
case = "../out/demo.duckdb"
since = ""
until = ""
namespace = "shop"
pod = ""
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
# ## What did the rules find in this namespace?

# %%
show(inv.findings_for(con, namespace=namespace, **window))

# %% [markdown]
# ## Who touched it?
#
# Identity x verb x resource in the namespace (or on the pod).

# %%
show(inv.workload_activity(con, namespace, pod or None, **window))

# %% [markdown]
# ## Who ran commands in its pods?

# %%
show(inv.workload_exec(con, namespace, pod or None, **window))

# %% [markdown]
# ## Which secrets were read, and by whom?
#
# Names and counts only, never values; cluster-wide lists are included since they read this
# namespace too.

# %%
show(inv.secrets_read(con, namespace, **window))

# %% [markdown]
# ## Did its isolation change?
#
# NetworkPolicy writes, and namespace or pod label changes with the labels before (when
# recorded) and after: a relabel can move the namespace into another policy's selector.

# %%
show(inv.policy_and_label_changes(con, namespace, **window))

# %% [markdown]
# ## The whole case, for context

# %%
show(charts.timeline(con, **window))

# %% [markdown]
# ## Explore interactively
#
# Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
# identity, namespace and finding level; the chart and tables below them re-render on every
# change. With `interactive = False` (papermill, reports) nothing here runs.

# %%
if interactive:
    from kforensics.report.explore import explore

    def who_touched_it(con, who, where, win):
        if where:
            show(inv.workload_activity(con, where, **win))

    explore(con, since, until, namespace=namespace, extra=who_touched_it)

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
