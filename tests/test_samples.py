"""The sample story loads cleanly in every shape, and the shapes agree on the incident."""

from __future__ import annotations

import pytest

from kforensics import connect
from kforensics.sample import incident_steps
from tests.conftest import SAMPLES

SHAPES = ("native", "eks", "gke", "aks")
# Everything but where the event came from: native, EKS and AKS carry the same event text
# (its SHA-256 is the digest; the native case keeps it in the source file, the others hold it).
FULL = (
    "event_id, audit_id, stage, level, ts, stage_ts, verb, username, user_groups, user_extra, "
    "impersonated_user, source_ips, user_agent, resource, subresource, namespace, name, "
    "api_group, api_version, request_uri, code, decision, reason, annotations, "
    "request_object, response_object, digest"
)
# What GKE keeps of an event (see the README's GKE mapping).
GKE_COMMON = (
    "audit_id, verb, username, source_ips, user_agent, resource, subresource, namespace, name, "
    "coalesce(api_group, '') AS api_group, api_version, ts, decision, request_object, "
    "code < 400 AS succeeded"
)


@pytest.fixture(scope="module")
def cases(sample_cases) -> dict:
    return {shape: sample_cases.loaded(shape) for shape in SHAPES}


def incident_ids() -> list[str]:
    return sorted({a for step in incident_steps() for a in step["audit_ids"]})


def select(case, columns: str, where: str = "stage = 'ResponseComplete'") -> list[tuple]:
    ids = incident_ids()
    with connect(case) as con:
        return con.execute(
            f"SELECT {columns} FROM events WHERE audit_id IN (SELECT unnest($ids)) AND {where} "
            "ORDER BY audit_id, stage",
            {"ids": ids},
        ).fetchall()


def test_every_sample_file_loads_without_rejects(cases):
    for shape, (_, result) in cases.items():
        assert result.rejected == 0, (shape, result.reject_reasons)
        for s in result.sources:
            assert s.records == s.events_loaded + s.duplicates, s
            assert s.format != "unknown", s


def test_overlaps_in_the_samples_are_duplicates_not_new_events(cases):
    native = cases["native"][1]
    by_name = {s.path.rsplit("/", 1)[-1]: s for s in native.sources}
    # The rotated file's last 20 lines open audit.log; the webhook EventList repeats 50 events.
    assert by_name["audit.log"].duplicates == 20
    assert by_name["webhook-eventlist.json"].duplicates == 50
    assert native.collisions == 0


def test_the_incident_is_the_same_rows_in_native_eks_and_aks(cases):
    native = select(cases["native"][0], FULL, "true")
    assert len(native) >= len(incident_ids())
    assert select(cases["eks"][0], FULL, "true") == native
    assert select(cases["aks"][0], FULL, "true") == native


def test_the_incident_in_gke_maps_to_what_gke_keeps_of_the_native_rows(cases):
    native = select(cases["native"][0], GKE_COMMON)
    gke = select(cases["gke"][0], GKE_COMMON)
    assert len(gke) == len(incident_ids()) == len(native)
    assert gke == native


def test_committed_samples_are_what_the_generator_writes(tmp_path):
    from kforensics.sample import write_samples

    written = write_samples(tmp_path, seed=7)
    assert written
    for path in written:
        committed = SAMPLES / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), committed
