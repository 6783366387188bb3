-- description: Requests per time bucket and outcome class (2xx/3xx/4xx/5xx/none).
--
-- Undated requests are left out (they have no bucket; `quality_summary` counts them); with an
-- identity, its own requests and those made as it.
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- param buckets int = 60: about this many time buckets
-- param identity text?: only this identity's own requests and those made as it
-- param namespace text?: only requests in this namespace
WITH span AS (
    SELECT coalesce($since::TIMESTAMPTZ, min(ts)) AS lo, coalesce($until::TIMESTAMPTZ, max(ts)) AS hi
    FROM requests WHERE @W(ts)
),
need AS (
    SELECT lo, hi, greatest(1, ceil((epoch_us(hi) - epoch_us(lo)) / 1000000
                                    / greatest(1, $buckets)))::BIGINT AS seconds
    FROM span
),
-- a round width (one of NICE seconds, else whole days) giving at most about `buckets` buckets
w AS (
    SELECT CASE WHEN lo IS NULL OR hi IS NULL THEN 60
        ELSE coalesce(list_filter(@NICE, lambda n: n >= seconds)[1],
                      ceil(seconds / 86400)::BIGINT * 86400) END AS width
    FROM need
)
SELECT to_timestamp(floor(epoch(ts) / width) * width) AS bucket,
       width AS bucket_seconds,
       CASE WHEN code IS NULL THEN 'none' ELSE (code // 100)::VARCHAR || 'xx' END
           AS outcome,
       count(*) AS requests
FROM requests, w
WHERE ts IS NOT NULL AND @W(ts)  -- undated requests have no bucket
  AND ($identity::VARCHAR IS NULL OR @MINE)
  AND ($namespace::VARCHAR IS NULL OR namespace = $namespace)
GROUP BY ALL ORDER BY bucket, outcome
