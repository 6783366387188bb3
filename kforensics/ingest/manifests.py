"""Cluster-object dumps: the Kubernetes objects in `kubectl get -o yaml|json` output.

One reader for every dump kforensics takes (`load --inventory`, `netpol connlist`): YAML files
may hold several documents, `.json` files one; `kind: List`, `items` lists and `*List` kinds
are flattened, and items without a kind (a PodList as the API returns it) take the list's.
A file that cannot be read or parsed raises ManifestError naming it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import yaml

from kforensics import untrusted
from kforensics.errors import InputError, ManifestError
from kforensics.ingest.discover import discover

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built in: 10x faster


def manifest_files(paths: Iterable[str | Path] | str | Path) -> list[Path]:
    """Return the files given and the manifests (by suffix) under the folders and globs given.

    Paths are found as audit logs are (`ingest.discover`); anything named that cannot be
    listed or read is a ManifestError: an inventory missing a file would restore a wrong cluster.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    out: list[Path] = []
    for arg in paths:
        try:
            files, unreadable = discover([arg])
        except InputError as exc:
            raise ManifestError(str(exc)) from exc
        if unreadable:
            raise ManifestError(f"{unreadable[0].path}: cannot read: {unreadable[0].reason}")
        if Path(arg).is_dir():  # a whole folder: only what looks like a manifest
            files = [f for f in files if f.suffix in MANIFEST_SUFFIXES]
        out += [f for f in files if f not in out]
    return out


def read_documents(path: Path) -> list[object]:
    """Return the documents of one YAML or JSON file (empty YAML documents dropped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: not a YAML or JSON manifest: {exc}") from exc
    try:
        if path.suffix == ".json":
            docs = [json.loads(text)]
        else:
            docs = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: not a YAML or JSON manifest: {exc}") from exc
    except RecursionError as exc:
        raise ManifestError(f"{path}: nested too deeply to be a Kubernetes object") from exc
    # copies, serializers and walks downstream recurse: refuse what no real object needs
    if any(untrusted.too_deep(d) for d in docs):
        raise ManifestError(
            f"{path}: nested deeper than {untrusted.MAX_DEPTH} levels: not a Kubernetes object"
        )
    return docs


def flatten(docs: Iterable[object]) -> Iterator[Mapping]:
    """Return the mappings in the documents, lists and `items` flattened, in document order."""
    # a stack, not recursion: a crafted dump may nest lists deeply
    stack: list[tuple[object, str | None]] = [(d, None) for d in reversed(list(docs))]
    while stack:
        doc, kind = stack.pop()
        if isinstance(doc, list):
            stack += [(d, None) for d in reversed(doc)]
        elif isinstance(doc, Mapping) and isinstance(doc.get("items"), list):
            # PodList items as the API returns them carry no kind: the list kind tells it
            item_kind = str(doc.get("kind") or "").removesuffix("List") or None
            stack += [(d, item_kind) for d in reversed(doc["items"])]
        elif isinstance(doc, Mapping):
            yield {**doc, "kind": kind} if kind and "kind" not in doc else doc


def read_manifests(paths: Iterable[str | Path] | str | Path) -> list[Mapping]:
    """Return the flattened documents of the files and folders' manifests, in path order."""
    return [doc for file in manifest_files(paths) for doc in flatten(read_documents(file))]


def manifest_objects(path: Path) -> list[dict]:
    """Return the Kubernetes objects (a kind and a name) in one YAML or JSON file."""
    out = []
    for doc in flatten(read_documents(path)):
        meta = doc.get("metadata")
        if doc.get("kind") and isinstance(meta, Mapping) and meta.get("name"):
            out.append(dict(doc))
    return out
