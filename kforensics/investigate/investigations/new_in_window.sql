-- description: Identities (sending or impersonated), source IPs and user agents first seen inside the window (a value seen only undated counts as new in every window).
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param limit int = 100: at most this many rows
WITH x AS (
    SELECT 'identity' AS kind, username AS value, ts FROM requests
    UNION ALL SELECT 'identity', impersonated_user, ts FROM requests
    UNION ALL SELECT 'source_ip', unnest(source_ips), ts FROM requests
    UNION ALL SELECT 'user_agent', user_agent, ts FROM requests
)
SELECT * FROM (
    SELECT kind, value, min(ts) AS first_seen,
           count(*) FILTER (WHERE @W(ts)) AS requests_in_window
    FROM x WHERE value IS NOT NULL GROUP BY ALL
) WHERE @W(first_seen)
ORDER BY kind, first_seen, value LIMIT $limit
