-- The canonical case schema. Users and other tools query it: keep it stable, and raise
-- case.SCHEMA_VERSION with any change (older cases are refused with a clear message).
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE SEQUENCE IF NOT EXISTS load_seq START 1;

CREATE TABLE IF NOT EXISTS loads (
    load_id      INTEGER PRIMARY KEY,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ,
    kforensics   VARCHAR NOT NULL,
    arguments    VARCHAR[] NOT NULL,
    cluster      VARCHAR  -- `load --cluster`: the cluster these logs are of (NULL: not said)
);
-- version 7 added the cluster: a version-6 case opened for writing gains it
ALTER TABLE loads ADD COLUMN IF NOT EXISTS cluster VARCHAR;

CREATE TABLE IF NOT EXISTS sources (
    load_id        INTEGER NOT NULL,
    path           VARCHAR NOT NULL,
    sha256         VARCHAR NOT NULL,
    bytes          BIGINT NOT NULL,
    compression    VARCHAR NOT NULL,
    format         VARCHAR NOT NULL,
    lines_read     BIGINT NOT NULL,
    blank_lines    BIGINT NOT NULL,
    records        BIGINT NOT NULL,
    events_loaded  BIGINT NOT NULL,
    duplicates     BIGINT NOT NULL,
    rejected       BIGINT NOT NULL,
    error          VARCHAR,
    -- the load that read these very bytes (same size and SHA-256): this one skipped the file
    already_loaded INTEGER
);

CREATE TABLE IF NOT EXISTS rejects (
    load_id      INTEGER NOT NULL,
    source_file  VARCHAR NOT NULL,
    source_line  BIGINT NOT NULL,
    source_index INTEGER,
    reason       VARCHAR NOT NULL,
    raw          VARCHAR,
    raw_bytes    BIGINT
);

-- Big JSON columns use zstd: faster to write and smaller than the default for long text. The
-- hash columns (event_id, request_id, digest) are random: stored uncompressed, which spares the
-- commit an analysis that finds nothing to compress (about 1 s a million events).
CREATE TABLE IF NOT EXISTS events (
    event_id          VARCHAR NOT NULL USING COMPRESSION uncompressed,
    request_id        VARCHAR NOT NULL USING COMPRESSION uncompressed,
    audit_id          VARCHAR,
    stage             VARCHAR,
    level             VARCHAR,
    ts                TIMESTAMPTZ,
    stage_ts          TIMESTAMPTZ,
    verb              VARCHAR,
    username          VARCHAR,
    user_groups       VARCHAR[],
    user_extra        JSON USING COMPRESSION zstd,  -- user.extra as logged
    impersonated_user VARCHAR,
    impersonated_groups VARCHAR[],
    source_ips        VARCHAR[],
    user_agent        VARCHAR,
    resource          VARCHAR,
    subresource       VARCHAR,
    namespace         VARCHAR,
    name              VARCHAR,
    api_group         VARCHAR,
    api_version       VARCHAR,
    request_uri       VARCHAR,
    code              INTEGER,
    decision          VARCHAR,
    reason            VARCHAR,
    annotations       MAP(VARCHAR, VARCHAR),
    request_object    JSON USING COMPRESSION zstd,
    response_object   JSON USING COMPRESSION zstd,
    source_format     VARCHAR NOT NULL,
    source_file       VARCHAR NOT NULL,
    source_line       BIGINT NOT NULL,
    source_index      INTEGER,
    load_id           INTEGER NOT NULL,
    quality           VARCHAR[] NOT NULL,
    -- The event's text when the case holds it: records unwrapped from a document or an
    -- envelope. NULL for a native line: its bytes stay in the source file (sources.sha256),
    -- at raw_offset of its decompressed stream, proven by `digest` (`kforensics verify`).
    raw               JSON USING COMPRESSION zstd,
    raw_offset        BIGINT,
    -- SHA-256 of the event's text: what dedupe compares.
    digest            BLOB NOT NULL USING COMPRESSION uncompressed,
    envelope          JSON USING COMPRESSION zstd
);

-- One row per request, its final stage: the one definition of a request that every count,
-- table, rule and report uses. A request is its `request_id` (see the README): the stages one
-- API server logged for it. Different requests that reuse one audit ID (a client chooses its
-- own Audit-ID header) stay apart, and so does every event without an audit ID.
-- Anti-joins rather than a window over every event: most requests end in ResponseComplete.
CREATE OR REPLACE VIEW requests AS
SELECT * FROM events
WHERE stage IS NULL OR stage NOT IN ('RequestReceived', 'ResponseStarted')
UNION ALL
SELECT * FROM events e WHERE stage = 'ResponseStarted' AND NOT EXISTS (
    SELECT 1 FROM events l
    WHERE l.request_id = e.request_id
      AND (l.stage IS NULL OR l.stage NOT IN ('RequestReceived', 'ResponseStarted')))
UNION ALL
SELECT * FROM events e WHERE stage = 'RequestReceived' AND NOT EXISTS (
    SELECT 1 FROM events l
    WHERE l.request_id = e.request_id AND l.stage IS DISTINCT FROM 'RequestReceived');

-- Different events logged under one audit ID and stage: the API server takes a client's
-- Audit-ID header as the audit ID, so a collision can mean tampering.
CREATE OR REPLACE VIEW audit_id_collisions AS
SELECT audit_id, stage, count(*) AS events, count(DISTINCT request_id) AS requests,
       list(event_id ORDER BY event_id) AS event_ids,
       list(DISTINCT username) AS usernames,
       list(source_file || ':' || source_line ORDER BY source_file, source_line) AS evidence
FROM events
WHERE audit_id IS NOT NULL
GROUP BY audit_id, stage
HAVING count(*) > 1;

-- What the last `kforensics detect` found: one row per rule and subject, with its evidence.
CREATE TABLE IF NOT EXISTS findings (
    finding_id   VARCHAR NOT NULL,
    rule_id      VARCHAR NOT NULL,
    title        VARCHAR NOT NULL,
    level        VARCHAR NOT NULL,
    attack       VARCHAR[] NOT NULL,
    tactics      VARCHAR[] NOT NULL,
    first_seen   TIMESTAMPTZ,
    last_seen    TIMESTAMPTZ,
    actor        VARCHAR,
    impersonated VARCHAR,
    source_ips   VARCHAR[] NOT NULL,
    namespace    VARCHAR,
    resource     VARCHAR,
    name         VARCHAR,
    count        BIGINT NOT NULL,
    evidence     STRUCT(event_id VARCHAR, audit_id VARCHAR, source_file VARCHAR,
                        source_line BIGINT)[] NOT NULL,
    quality      VARCHAR[] NOT NULL,
    detected_at  TIMESTAMPTZ NOT NULL
);

-- One row per stored `detect` run: the loads whose events its findings cover, and a digest of
-- what judged them (the rules' SQL and grouping, the exceptions' fields): where
-- `detect --since-last` goes on from. Never a time: event times are the attacker's.
CREATE TABLE IF NOT EXISTS detect_watermarks (
    detected_at  TIMESTAMPTZ NOT NULL,
    loads        INTEGER[] NOT NULL,
    rules_digest VARCHAR NOT NULL
);

-- Objects from `kubectl get ... -o json|yaml` dumps (kforensics load --inventory): the cluster
-- state the audit log may not have recorded.
CREATE TABLE IF NOT EXISTS inventory (
    load_id      INTEGER NOT NULL,
    source_file  VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    namespace    VARCHAR,
    name         VARCHAR NOT NULL,
    object       JSON NOT NULL
);

-- One row per `kforensics detect` that stored its findings: an empty `findings` table then
-- means "nothing found", not "never examined".
CREATE TABLE IF NOT EXISTS detect_runs (
    detected_at  TIMESTAMPTZ NOT NULL,
    rules        VARCHAR[] NOT NULL,
    exceptions   INTEGER NOT NULL,
    since        TIMESTAMPTZ,
    until        TIMESTAMPTZ,
    findings     INTEGER NOT NULL
);

-- The exception entries each `kforensics detect` that stored its findings applied, one row per
-- entry under its run's `detected_at`: which hits were dropped, matched on what, and why (the
-- triage report's header lists them). `fields` is a JSON object {field: [glob patterns]}.
-- Added within version 4: a case without it was detected before it, and reads as not recorded.
CREATE TABLE IF NOT EXISTS detect_exceptions (
    detected_at  TIMESTAMPTZ NOT NULL,
    rule_id      VARCHAR NOT NULL,
    fields       JSON NOT NULL,
    reason       VARCHAR NOT NULL
);

-- What each `kforensics remediate` put in place, so that newer logs can be watched for its
-- undoing: the watch rules (rules/k8s-containment-*.yaml) read it. One row per thing the
-- containment holds: a quarantined pod, an emitted policy, a revoked binding or role, a
-- contained identity, a deleted workload, a cordoned node, a credential to rotate.
-- `effective_from` is the time of the case's last event when the plan was made: events after
-- it happened after the fix. `action` is one of: quarantine-pod (labels: the pod's labels with
-- the quarantine label), policy (object: the NetworkPolicy as emitted), revoke-binding and
-- revoke-role (object: as the log last recorded it), contain-identity (identity), delete-workload,
-- cordon-node (name: the node), rotate-secret, rotate-token (identity: the service account;
-- object: {"pod_uids": [...], "pod_ips": [...]} of the pods whose token was exposed),
-- rotate-bootstrap-token (identity: system:bootstrap:<token id>), rotate-node-credentials
-- (identity: system:node:<node>; object: {"node_ips": [...]}).
CREATE TABLE IF NOT EXISTS remediations (
    remediation_id VARCHAR NOT NULL,
    generated_at   TIMESTAMPTZ NOT NULL,
    effective_from TIMESTAMPTZ,
    step           VARCHAR NOT NULL,
    action         VARCHAR NOT NULL,
    kind           VARCHAR,
    namespace      VARCHAR,
    name           VARCHAR,
    identity       VARCHAR,
    labels         MAP(VARCHAR, VARCHAR),
    object         JSON,
    finding_ids    VARCHAR[] NOT NULL,
    evidence       VARCHAR[] NOT NULL
);

-- Analysts' notes (`kforensics note`, Case.note, the notebooks' note widget): a tag, a comment
-- and/or a mark on an event (target: its event_id), a finding (its finding_id) or an identity
-- (its name). `load` and `detect` never touch it. A finding_id is a content id (the rule and
-- the finding's subject), so a note follows its finding through every re-detect that finds it
-- again. `mark` ('triaged' or 'false_positive', findings only) always has a `reason`; the
-- latest mark of a finding is its mark. `subject` keeps the noted finding's rule_id, actor,
-- impersonated, namespace, resource, name and source_ips as they were, so a false-positive
-- mark still becomes its exceptions entry after the finding is gone.
CREATE TABLE IF NOT EXISTS notes (
    note_id      INTEGER NOT NULL,
    target_kind  VARCHAR NOT NULL,
    target       VARCHAR NOT NULL,
    tag          VARCHAR,
    comment      VARCHAR,
    mark         VARCHAR,
    reason       VARCHAR,
    author       VARCHAR NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    subject      JSON
);

-- What the analyst declared sensitive (sensitive.yaml, `--sensitive FILE`, the notebooks'
-- `sensitive` parameter), as resolved against the case by the last `detect` that was given a
-- declaration: the declaration as YAML, the workloads it covers with why, and the names a
-- request may give to target one of them (`priority` 0 an exact name, 1 a controller's naming
-- pattern `name_regex`, 2 anything in a sensitive namespace; workload NULL: a known pod of
-- another workload, which no pattern may claim). The baseline is what that detect compared
-- with: the case before `baseline_until` and the case file `baseline_case`. Candidates (pods
-- that hold many secrets, run privileged, sit in kube-system or back a LoadBalancer) are kept in
-- sensitive_workloads with `candidate` true, for the analyst to confirm. Added in version 5.
CREATE TABLE IF NOT EXISTS sensitive_declaration (
    declared_at  TIMESTAMPTZ NOT NULL,
    source       VARCHAR NOT NULL,
    declaration  VARCHAR NOT NULL,
    baseline_until TIMESTAMPTZ,
    baseline_case  VARCHAR
);
CREATE TABLE IF NOT EXISTS sensitive_workloads (
    workload     VARCHAR NOT NULL,
    namespace    VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,
    name         VARCHAR NOT NULL,
    why          VARCHAR[] NOT NULL,
    pods         VARCHAR[] NOT NULL,
    labels       MAP(VARCHAR, VARCHAR),
    secrets      VARCHAR[] NOT NULL,
    configmaps   VARCHAR[] NOT NULL,
    services     VARCHAR[] NOT NULL,
    service_account VARCHAR,
    recorded     BOOLEAN NOT NULL,
    evidence     VARCHAR,
    candidate    BOOLEAN NOT NULL  -- proposed from the case (why: its reasons), not declared
);
CREATE TABLE IF NOT EXISTS sensitive_targets (
    workload     VARCHAR,
    namespace    VARCHAR NOT NULL,
    resource     VARCHAR,
    name         VARCHAR,
    name_regex   VARCHAR,
    priority     INTEGER NOT NULL
);
-- The sensitive workloads each stored finding's evidence targets (findings of rules with a
-- `sensitive:` level raise were raised by it); a finding without a row targets none.
CREATE TABLE IF NOT EXISTS sensitive_findings (
    finding_id   VARCHAR NOT NULL,
    workloads    VARCHAR[] NOT NULL,
    raised_from  VARCHAR
);
