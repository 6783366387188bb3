-- description: What the identity touched (itself, or others as it: `relation`): resource, namespace, verb, requests, failures, names.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT concat_ws('/', resource, subresource) AS resource, namespace, verb,
       @RELATION AS relation,
       count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
       count(DISTINCT name) AS names, min(ts) AS first_seen, max(ts) AS last_seen
FROM requests WHERE @MINE AND @W(ts)
GROUP BY ALL ORDER BY requests DESC, resource, namespace, verb, relation
