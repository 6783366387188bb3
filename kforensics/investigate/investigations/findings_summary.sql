-- description: Finding counts by level and by ATT&CK tactic (dimension, value, findings, events).
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH f AS (SELECT * FROM findings WHERE @W(first_seen)),
t AS (SELECT unnest(tactics) AS tactic, count FROM f),
c AS (
    SELECT 'level' AS dimension, level AS value, count(*) AS findings,
           sum(count)::BIGINT AS events, min(@LEVELS) AS rank
    FROM f GROUP BY ALL
    UNION ALL
    SELECT 'tactic', tactic, count(*), sum(count)::BIGINT, 9 FROM t GROUP BY ALL
)
SELECT dimension, value, findings, events FROM c
ORDER BY dimension, rank, findings DESC, value
