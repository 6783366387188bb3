-- description: NetworkPolicy writes and namespace/pod label changes, with old and new labels.
-- param namespace text: the namespace
-- redact: old_labels, new_labels
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH o AS (
    SELECT ts, username, impersonated_user, verb, resource, namespace, code,
        source_file, source_line,
        coalesce(name, request_object->>'$.metadata.name') AS object,
        coalesce(response_object->'$.metadata.labels',
                 request_object->'$.metadata.labels') AS labels,
        (request_object->'$.metadata.labels') IS NOT NULL AS sets_labels
    FROM requests
    WHERE (resource = 'namespaces' AND name = $namespace)
       OR (resource IN ('pods', 'networkpolicies') AND namespace = $namespace)
),
h AS (
    SELECT *, last_value(labels IGNORE NULLS) OVER (
        PARTITION BY resource, object ORDER BY ts
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS old_labels
    FROM o
)
SELECT ts, username AS actor, impersonated_user AS impersonated, verb, resource, object,
       code,
       old_labels::VARCHAR AS old_labels, labels::VARCHAR AS new_labels,
       source_file || ':' || source_line AS evidence
FROM h
WHERE @W(ts) AND (
    (resource = 'networkpolicies' AND verb IN @WRITES)
    OR (verb IN ('update', 'patch') AND labels IS NOT NULL
        AND (old_labels IS NOT NULL OR sets_labels)
        AND old_labels IS DISTINCT FROM labels))
ORDER BY ts
