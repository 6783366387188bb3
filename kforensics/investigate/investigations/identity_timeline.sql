-- description: The identity's requests, and those others made as it, in time order (undated last): metadata only, with the evidence line and the event's quality flags.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param limit int = 500: at most this many rows
-- param namespace text?: only requests in this namespace
SELECT ts, @RELATION AS relation, @IDENTITY AS identity, @BY AS impersonated_by, verb,
       concat_ws('/', resource, subresource) AS resource, namespace, name,
       code, source_ips[1] AS source_ip, user_agent, audit_id,
       source_file || ':' || source_line AS evidence, quality
FROM requests
WHERE @MINE AND @W(ts) AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
ORDER BY ts NULLS LAST, source_file, source_line, source_index LIMIT $limit
