-- description: The stored findings of an identity (as actor or impersonated) and/or namespace, most severe first (undated last), with the quality flags of the events they stand on and the analysts' notes on each (kforensics note).
-- param identity text?: only this identity's own requests and those made as it
-- param namespace text?: only this namespace
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param min_level level?: only this level and those above it
SELECT first_seen, level, rule_id, title, actor, impersonated, namespace,
       concat_ws('/', resource, name) AS object, count, tactics, attack,
       evidence[1].source_file || ':' || evidence[1].source_line AS first_evidence,
       quality, @NOTES AS notes
FROM findings
WHERE ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
  AND ($min_level::VARCHAR IS NULL
       OR list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level))
  AND @W(first_seen)
ORDER BY @LEVELS, first_seen NULLS LAST, rule_id, finding_id
