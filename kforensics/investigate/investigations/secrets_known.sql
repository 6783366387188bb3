-- description: The secrets the log names (any request on one, by name), per namespace, whether present at the end (a request on it succeeded, and no delete did), with the first and last request: no values.
-- param namespace text?: only this namespace (empty: every namespace)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT namespace, name, min(ts) AS first_seen, max(ts) AS last_seen,
       bool_or(coalesce(code, 200) < 400)
           AND NOT bool_or(verb = 'delete' AND coalesce(code, 200) < 400) AS present
FROM requests
WHERE resource = 'secrets' AND subresource IS NULL AND name IS NOT NULL
  AND namespace IS NOT NULL AND ($namespace::VARCHAR IS NULL OR namespace = $namespace) AND @W(ts)
GROUP BY namespace, name
ORDER BY namespace, name
