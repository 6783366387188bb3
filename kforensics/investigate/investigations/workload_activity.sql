-- description: Who touched the namespace (or one pod): identity x verb x resource counts.
-- param namespace text: the namespace
-- param pod text?: only this pod
-- param identity text?: only this identity's own requests and those made as it
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
       concat_ws('/', resource, subresource) AS resource,
       count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM requests
WHERE namespace = $namespace AND @W(ts)
  AND ($pod::VARCHAR IS NULL OR (resource = 'pods' AND name = $pod))
  AND ($identity::VARCHAR IS NULL OR @MINE)
GROUP BY ALL
ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, verb, resource
