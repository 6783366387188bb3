-- description: 401/403 responses counted by identity, resource, namespace and code.
--
-- A refusal of an impersonated request is the impersonated identity's (`impersonated_by` says
-- who sent it).
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param limit int = 50: at most this many rows
SELECT @IDENTITY AS identity, @BY AS impersonated_by,
       concat_ws('/', resource, subresource) AS resource,
       namespace, code, count(*) AS requests, min(ts) AS first_seen, max(ts) AS last_seen
FROM requests WHERE code IN (401, 403) AND @W(ts)
GROUP BY ALL
ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, resource, namespace NULLS FIRST, code
LIMIT $limit
