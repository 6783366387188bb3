-- description: The pods an identity touched: exec'd into, attached to, port-forwarded to, added ephemeral containers to, created, or whose token it used; how, when first, and the evidence.
-- A pod-bound token names its pod in user.extra (authentication.kubernetes.io/pod-name): the pod the token was taken from.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH touched AS (
    SELECT namespace,
           coalesce(name, response_object->>'$.metadata.name',
                    request_object->>'$.metadata.name') AS pod,
           CASE WHEN subresource IS NULL THEN 'created'
                WHEN subresource = 'ephemeralcontainers' THEN 'ephemeral container'
                ELSE subresource END AS how,
           ts, source_file, source_line
    FROM requests
    WHERE @MINE AND resource = 'pods' AND coalesce(code, 200) < 400
      AND (subresource IN ('exec', 'attach', 'portforward', 'ephemeralcontainers')
           OR (subresource IS NULL AND verb = 'create'))
      AND @W(ts)
    UNION ALL
    -- the token's own pod: its namespace is the service account's
    SELECT split_part(username, ':', 3) AS namespace,
           user_extra->'authentication.kubernetes.io/pod-name'->>0 AS pod,
           'its token used' AS how, ts, source_file, source_line
    FROM requests
    WHERE username = $identity AND username LIKE 'system:serviceaccount:%'
      AND user_extra->'authentication.kubernetes.io/pod-name'->>0 IS NOT NULL
      AND @W(ts)
)
SELECT namespace, pod, list(DISTINCT how ORDER BY how) AS how, min(ts) AS first_seen,
       count(*) AS requests,
       list(source_file || ':' || source_line ORDER BY ts NULLS LAST, source_file, source_line)
           AS evidence
FROM touched
WHERE pod IS NOT NULL AND namespace IS NOT NULL
GROUP BY namespace, pod
ORDER BY first_seen NULLS LAST, namespace, pod
