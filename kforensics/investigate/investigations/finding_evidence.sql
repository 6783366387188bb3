-- description: The events each stored finding at or above a level stands on (at most per_finding of each, in the order it cites them): file:line, audit ID, time, verb, object, response code and the analysts' notes on the event (kforensics note).
-- param min_level level = info: the least severe level of the findings (info, low, medium, high, critical)
-- param per_finding int = 20: at most this many events of each finding
-- param identity text?: only this identity's findings (as actor or impersonated)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH f AS (
    SELECT finding_id, unnest(evidence) AS ev, unnest(range(1, len(evidence) + 1)) AS n
    FROM findings
    WHERE list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level)
      AND ($identity::VARCHAR IS NULL OR actor = $identity OR impersonated = $identity)
      AND @W(first_seen)
)
SELECT f.finding_id, f.n, f.ev.source_file || ':' || f.ev.source_line AS evidence,
       f.ev.audit_id AS audit_id, e.ts, e.verb,
       nullif(concat_ws('/', e.namespace, e.resource, e.name, e.subresource), '') AS object,
       e.code, @EVENT_NOTES AS notes
FROM f LEFT JOIN events e ON e.event_id = f.ev.event_id
WHERE f.n <= $per_finding
ORDER BY f.finding_id, f.n
