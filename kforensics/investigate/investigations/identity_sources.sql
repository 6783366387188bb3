-- description: The identity's source IPs and user agents with requests, first and last seen (`relation`: its own requests, or those others made as it).
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH r AS (SELECT *, @RELATION AS relation FROM requests WHERE @MINE AND @W(ts)),
x AS (SELECT 'source_ip' AS kind, unnest(source_ips) AS value, relation, ts FROM r
      UNION ALL SELECT 'user_agent', user_agent, relation, ts FROM r)
SELECT kind, value, relation, count(*) AS requests, min(ts) AS first_seen,
       max(ts) AS last_seen
FROM x WHERE value IS NOT NULL GROUP BY ALL
ORDER BY kind, first_seen NULLS LAST, value, relation
