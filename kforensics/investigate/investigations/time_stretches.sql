-- description: The stretches of the window (first and last request, requests) separated by gaps longer than gap_days, the busiest first.
--
-- The request charts draw the busiest stretch: one request stamped 1970 or 9999 (a crafted or
-- broken clock) would otherwise squash everything else into one bar.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param identity text?: only this identity's own requests and those made as it
-- param gap_days int = 7: a gap longer than this many days starts a new stretch
WITH t AS (
    SELECT ts, count(*) AS n FROM requests
    WHERE ts IS NOT NULL AND @W(ts) AND ($identity::VARCHAR IS NULL OR @MINE)
    GROUP BY ts
),
g AS (
    SELECT ts, n, coalesce(ts - lag(ts) OVER (ORDER BY ts) > to_days($gap_days), false) AS jump
    FROM t
),
s AS (SELECT ts, n, sum(jump::INTEGER) OVER (ORDER BY ts ROWS UNBOUNDED PRECEDING) AS k FROM g)
SELECT min(ts) AS lo, max(ts) AS hi, sum(n)::BIGINT AS requests
FROM s GROUP BY k ORDER BY requests DESC, hi DESC
