"""Ingest: audit logs into a case, every input record an event, a duplicate or a reject.

The stages, in order, and the module of each (`load.load` runs them all, in one transaction):

1. discover: the files named by paths, folders and globs, and what could not be read
   (`discover`).
2. read: each file as blocks of whole lines, gzip found by content, hashed as it is read
   (`read.FileReader`, `read.split_lines`).
3. split records: a line file is one record per line, mapped in windows of blocks
   (`windows`); a JSON document is streamed (`documents`) and split into its records by
   `jsonstream.RecordStream`, over `jsonscan` (the numpy structural scan), `jsonpieces`
   (container arrays), `jsonscalars` (top-level scalars) and `jsonenvelope` (envelopes).
4. recognise shape: native, EventList, EKS, GKE, AKS, log pipelines; envelopes unwrapped
   into native events (`shapes`, with `gke` and `elements`).
5. map to columns: the one SQL mapping onto `events`, with quality flags and reject reasons
   (`mapping`), run over Arrow chunks (`events.EventWriter`).
6. load, dedupe, account: exact repeats removed and audit-ID collisions counted (`dedupe`),
   rejects written (`rejects`), one `sources` row per file (`sources`), the result
   (`load.LoadResult`).

Beside the log, `manifests` reads cluster-object dumps (`load --inventory`).
"""
