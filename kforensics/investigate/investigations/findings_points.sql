-- description: One row per dated finding (first_seen, level, rule, actor, count), most severe first; the actor reads `alice as system:admin` under impersonation.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param identity text?: only this identity's own requests and those made as it
-- param namespace text?: only this namespace
-- param min_level level?: only this level and those above it
-- param limit int = 300: at most this many rows
SELECT first_seen, level, rule_id,
       coalesce(actor, '(several)') || coalesce(' as ' || impersonated, '') AS actor,
       coalesce(namespace, '') AS namespace, count
FROM findings
WHERE first_seen IS NOT NULL AND @W(first_seen)  -- a chart point needs a time
  AND ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
  AND ($min_level::VARCHAR IS NULL
       OR list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level))
ORDER BY @LEVELS, first_seen, rule_id LIMIT $limit
