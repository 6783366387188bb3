-- description: What an identity did, step by step in time order (undated last): one step per request its findings stand on first, with what the rules call it, where, the ATT&CK techniques, the worst level and the evidence.
-- A step is the first event of one or more findings (a privileged hostPID pod is one request and
-- five findings): `what` lists their titles most severe first, `level` is the worst of them.
-- Info findings (activity, not suspicion) are left out unless min_level asks for them.
-- param identity text: the identity (as actor, or impersonated)
-- param min_level level = low: the least severe level of the findings shown
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH f AS (
    SELECT finding_id, rule_id, title, level, attack, first_seen,
           list_position(@LEVEL_LIST, level) AS rank, evidence[1] AS first
    FROM findings
    WHERE (actor = $identity OR impersonated = $identity)
      AND list_position(@LEVEL_LIST, level) >= list_position(@LEVEL_LIST, $min_level)
      AND @W(first_seen)
),
steps AS (
    SELECT first.event_id AS event_id, any_value(first) AS first, min(first_seen) AS at,
           max(rank) AS rank,
           list(title ORDER BY rank DESC, rule_id) AS what,
           list(rule_id ORDER BY rank DESC, rule_id) AS rules,
           list(finding_id ORDER BY rank DESC, rule_id) AS findings,
           list_sort(list_distinct(flatten(list(attack)))) AS techniques
    FROM f GROUP BY first.event_id
)
SELECT row_number() OVER (ORDER BY s.at NULLS LAST, s.first.source_file, s.first.source_line)
           AS step,
       s.at, (@LEVEL_LIST)[s.rank] AS level, s.what,
       -- a non-resource request (/api, /version) is named by its path
       concat_ws(' ', e.verb, coalesce(nullif(concat_ws('/', e.resource, e.subresource), ''),
                                       split_part(e.request_uri, '?', 1))) AS request,
       e.code, nullif(concat_ws('/', e.namespace, e.resource, e.name), '') AS "where",
       s.techniques,
       s.first.source_file || ':' || s.first.source_line AS evidence,
       s.first.audit_id AS audit_id, s.rules, s.findings
FROM steps s LEFT JOIN events e ON e.event_id = s.event_id
ORDER BY step
