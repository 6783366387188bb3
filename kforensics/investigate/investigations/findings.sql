-- description: The stored findings at or above a level, most severe first (undated last), with every event behind each (evidence), the quality flags of those events and the analysts' notes on it (kforensics note).
-- param min_level level = info: the least severe level shown (info, low, medium, high, critical)
-- param identity text?: only this identity's findings (as actor or impersonated)
-- param namespace text?: only this namespace
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT first_seen, last_seen, level, rule_id, title, actor, impersonated, namespace, resource,
       name, count, source_ips, tactics, attack, evidence, quality, finding_id,
       @NOTES AS notes
FROM findings
WHERE list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level)
  AND ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
  AND @W(first_seen)
ORDER BY @LEVELS, first_seen NULLS LAST, rule_id, finding_id
