"""Objects a GitOps tool or Helm owns: a change made by hand is reverted by the next sync."""

from __future__ import annotations

from kforensics.contain.steps import say

# (where, key, tool): the markers each tool writes on what it manages
_MARKERS = (
    ("annotations", "meta.helm.sh/release-name", "Helm release"),
    ("labels", "helm.toolkit.fluxcd.io/name", "Flux HelmRelease"),
    ("labels", "kustomize.toolkit.fluxcd.io/name", "Flux Kustomization"),
    ("labels", "argocd.argoproj.io/instance", "Argo CD application"),
    ("annotations", "argocd.argoproj.io/tracking-id", "Argo CD application"),
)
_WHAT_TO_DO = {
    "Helm release": (
        "the next `helm upgrade` (or a CI deploy) puts the chart's version back: change the "
        "chart's templates or values"
    ),
    "Flux HelmRelease": (
        "Flux reconciles it back within its interval: `flux suspend helmrelease` while you "
        "change the chart in Git"
    ),
    "Flux Kustomization": (
        "Flux reconciles it back within its interval: `flux suspend kustomization` while you "
        "change the manifests in Git"
    ),
    "Argo CD application": (
        "Argo CD's sync (self-heal) reverts it: disable auto-sync for the application while "
        "you change its Git source"
    ),
}


def managed_by(obj: dict | None) -> str | None:
    """Return 'Helm release NAME' (or the Flux / Argo CD owner) of obj, None if none marks it."""
    meta = (obj or {}).get("metadata") or {}
    for where, key, tool in _MARKERS:
        value = (meta.get(where) or {}).get(key)
        if isinstance(value, str) and value:
            if key == "argocd.argoproj.io/tracking-id":
                value = value.split(":", 1)[0]  # APP:GROUP/KIND:NS/NAME
            return f"{tool} {say(value)}"
    return None


def revert_note(what: str, obj: dict | None) -> str | None:
    """Return the note for changing `what` when obj is managed, else None."""
    owner = managed_by(obj)
    if owner is None:
        return None
    tool = next(t for t in _WHAT_TO_DO if owner.startswith(t))
    return f"{what} is managed by {owner}: {_WHAT_TO_DO[tool]}"
