-- description: Findings per actor and level at or above a level (the suspects are drawn from these rows, kforensics.investigate.suspects).
-- param min_level level = medium: the least severe level counted
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
SELECT actor, level, count(*) AS findings, min(first_seen) AS first_seen
FROM findings
WHERE list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level)
  AND @W(first_seen)
GROUP BY actor, level
ORDER BY actor NULLS LAST, @LEVELS
