-- description: Findings per (ATT&CK tactic, technique) pair carried by the same finding.
-- `worst` is the most severe level among them and `score` weighs each finding by its level
-- (low 1, medium 3, high 9, critical 27): a few high findings outweigh many low ones.
-- param min_level level = info: the least severe level counted (the matrix chart leaves info out)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH f AS (
    SELECT unnest(tactics) AS tactic, attack, list_position(@LEVEL_LIST, level) AS rank
    FROM findings
    WHERE list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level)
      AND @W(first_seen)
),
p AS (SELECT tactic, unnest(attack) AS technique, rank FROM f)
SELECT tactic, technique, count(*) AS findings, (@LEVEL_LIST)[max(rank)] AS worst,
       sum(CASE WHEN rank >= 2 THEN 3 ** (rank - 2) ELSE 0 END)::BIGINT AS score
FROM p GROUP BY ALL ORDER BY tactic, technique
