-- description: Findings per (ATT&CK tactic, technique) pair carried by the same finding.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH f AS (SELECT unnest(tactics) AS tactic, attack FROM findings WHERE @W(first_seen)),
p AS (SELECT tactic, unnest(attack) AS technique FROM f)
SELECT tactic, technique, count(*) AS findings
FROM p GROUP BY ALL ORDER BY tactic, technique
