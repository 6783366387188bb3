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
# True records the plan in the case for the watch rules (as `kforensics remediate` does); a
# scheduled report leaves it False, or each run would move the watch's start.
record_remediation = False

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
# identity, namespace and finding level (that level and above). Everything below them follows
# every filter: requests follow time, identity and namespace, findings all four. A text box
# applies on Enter or when you leave it; a value that cannot be used is named beside its box and
# leaves what is shown as it was. With `interactive = False` (papermill, reports) nothing here
# runs.

# %%
if interactive:

    def who_touched_it(view, who, where, min_level):
        if where:
            kf.show(view.query("workload_activity", namespace=where, identity=who))

    kf.explore(c, namespace=namespace, extra=who_touched_it)

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
