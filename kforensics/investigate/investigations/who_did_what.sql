-- description: Request counts per identity, verb and resource (resource/subresource), top N.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param identity text?: only this identity's own requests and those made as it
-- param namespace text?: only requests in this namespace
-- param limit int = 50: at most this many rows
SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
       concat_ws('/', resource, subresource) AS resource, count(*) AS requests
FROM requests
WHERE @W(ts)
  AND ($identity::VARCHAR IS NULL OR @MINE)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
GROUP BY ALL
ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, verb, resource
LIMIT $limit
