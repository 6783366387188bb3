-- description: Per quality flag, the events that carry it and the findings that rest on them.
--
-- One row per flag ($quality_flags: mapping.QUALITY_FLAGS, in its order, zeros included) after a first row
-- `any flag`: `events` in the window (undated events, `no-timestamp`, are in every window, so
-- that row counts every undated event of the case) and `findings` whose evidence has at least
-- one event with the flag.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH flags AS (
    SELECT unnest($quality_flags) AS flag, unnest($quality_meanings) AS meaning,
           generate_subscripts($quality_flags, 1) AS n
    UNION ALL SELECT 'any flag', 'the event lacks at least one of the fields below', 0
),
e AS (SELECT quality FROM events WHERE @W(ts)),
f AS (SELECT quality FROM findings WHERE @W(first_seen)),
ec AS (SELECT flag, count(*) AS n FROM (SELECT unnest(quality) AS flag FROM e)
       GROUP BY flag
       UNION ALL SELECT 'any flag', count(*) FROM e WHERE len(quality) > 0),
fc AS (SELECT flag, count(*) AS n FROM (SELECT unnest(quality) AS flag FROM f)
       GROUP BY flag
       UNION ALL SELECT 'any flag', count(*) FROM f WHERE len(quality) > 0)
SELECT flags.flag, meaning, coalesce(ec.n, 0) AS events, coalesce(fc.n, 0) AS findings
FROM flags LEFT JOIN ec USING (flag) LEFT JOIN fc USING (flag)
ORDER BY flags.n
