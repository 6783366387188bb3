-- description: Secret reads in the namespace (and cluster-wide lists) by identity: no values.
-- param namespace text: the namespace
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT @IDENTITY AS identity, @BY AS impersonated_by, verb,
       CASE WHEN namespace IS NULL THEN '(all namespaces)'
            ELSE coalesce(name, '(list)') END AS secret,
       count(*) AS requests, count(*) FILTER (WHERE code >= 400) AS failed,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM requests
WHERE resource = 'secrets' AND verb IN ('get', 'list', 'watch')
  AND (namespace = $namespace OR namespace IS NULL) AND @W(ts)
GROUP BY ALL ORDER BY requests DESC, identity, impersonated_by NULLS FIRST, secret
