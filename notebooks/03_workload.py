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

import kforensics as kf

c = kf.open_case(case, since=since, until=until)  # read-only, holding no lock between calls

# %% [markdown]
# ## What did the rules find in this namespace?

# %%
kf.show(c.query("findings_for", namespace=namespace))

# %% [markdown]
# ## Who touched it?
#
# Identity x verb x resource in the namespace (or on the pod).

# %%
kf.show(c.query("workload_activity", namespace=namespace, pod=pod))

# %% [markdown]
# ## Who ran commands in its pods?

# %%
kf.show(c.query("workload_exec", namespace=namespace, pod=pod))

# %% [markdown]
# ## Which secrets were read, and by whom?
#
# Names and counts only, never values; cluster-wide lists are included since they read this
# namespace too.

# %%
kf.show(c.query("secrets_read", namespace=namespace))

# %% [markdown]
# ## Did its isolation change?
#
# NetworkPolicy writes, and namespace or pod label changes with the labels before (when
# recorded) and after: a relabel can move the namespace into another policy's selector.

# %%
kf.show(c.query("policy_and_label_changes", namespace=namespace))

# %% [markdown]
# ## The whole case, for context

# %%
kf.show(c.chart("timeline"))

# %% [markdown]
# ## Explore interactively
#
# Set `interactive = True` in the parameters cell (in Jupyter) for filters on the time range,
# identity, namespace and finding level; the chart and tables below them re-render on every
# change. With `interactive = False` (papermill, reports) nothing here runs.

# %%
if interactive:

    def who_touched_it(view, who, where):
        if where:
            kf.show(view.query("workload_activity", namespace=where))

    kf.explore(c, namespace=namespace, extra=who_touched_it)

# %% [markdown]
# ## Remediation: NetworkPolicies that contain what the findings show
#
# `c.remediate` (`kf.remediate` for a case file) turns the case's stored findings (the last
# `kforensics detect`) into proposed NetworkPolicies (quarantine, restore, pinned namespace
# selectors, egress blocks, default deny), validates every object and simulates the connections
# that change. It writes YAML, `apply.sh` and `REPORT.md` to `remediation_out` (a temporary
# folder when empty) and opens the case read-only. Review `REPORT.md` before applying anything.

# %%
out_dir = remediation_out or tempfile.mkdtemp(prefix="kforensics-remediation-")
kf.show_remediation(c.remediate(out_dir), out_dir)
