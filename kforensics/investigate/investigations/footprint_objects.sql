-- description: The objects an identity created, changed or deleted (successful writes, subresources apart): resource, where, verbs, when, and the evidence.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT api_group, resource, namespace,
       coalesce(name, response_object->>'$.metadata.name',
                request_object->>'$.metadata.name') AS name,
       list(DISTINCT verb ORDER BY verb) AS verbs, min(ts) AS first_seen, max(ts) AS last_seen,
       count(*) AS requests,
       list(source_file || ':' || source_line ORDER BY ts NULLS LAST, source_file, source_line)
           AS evidence
FROM requests
WHERE @MINE AND verb IN @WRITES AND subresource IS NULL AND coalesce(code, 200) < 400
  AND resource IS NOT NULL AND @W(ts)
GROUP BY ALL
ORDER BY first_seen NULLS LAST, resource, namespace, name
