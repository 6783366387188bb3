-- description: The busiest identities: requests, distinct verbs, denials, first and last seen.
--
-- One row per identity the requests were authorised as and impersonator (NULL: its own).
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param limit int = 15: at most this many rows
SELECT @IDENTITY AS identity, @BY AS impersonated_by, count(*) AS requests,
       count(DISTINCT verb) AS verbs,
       count(*) FILTER (WHERE code IN (401, 403)) AS denials,
       min(ts) AS first_seen, max(ts) AS last_seen
FROM requests WHERE @W(ts)
GROUP BY ALL ORDER BY requests DESC, identity, impersonated_by NULLS FIRST LIMIT $limit
