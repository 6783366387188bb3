-- description: The stored findings of an identity (as actor or impersonated) and/or namespace, most severe first (undated last), with the quality flags of the events they stand on.
-- param identity text?: only this identity's own requests and those made as it
-- param namespace text?: only this namespace
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param level level?: only this level
SELECT first_seen, level, rule_id, title, actor, impersonated, namespace,
       concat_ws('/', resource, name) AS object, count, tactics, attack,
       evidence[1].source_file || ':' || evidence[1].source_line AS first_evidence,
       quality
FROM findings
WHERE ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
  AND ($level::VARCHAR IS NULL OR level = $level)
  AND @W(first_seen)
ORDER BY @LEVELS, first_seen NULLS LAST, rule_id, finding_id
