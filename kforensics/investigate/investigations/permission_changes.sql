-- description: RBAC writes made by the identity (or by others as it: `impersonated`) or whose binding subjects include it.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
WITH r AS (
    SELECT *, coalesce(request_object, response_object) AS obj,
        list_transform(
            coalesce(from_json(obj->'$.subjects', '@SUBJECTS'), []),
            lambda s: CASE WHEN s.kind = 'ServiceAccount'
                THEN 'system:serviceaccount:' || coalesce(s.namespace, namespace, '')
                     || ':' || s.name
                ELSE s.name END) AS subject_names
    FROM requests
    WHERE resource IN @RBAC AND verb IN @WRITES AND @W(ts)
)
SELECT ts, username AS actor, impersonated_user AS impersonated, verb, resource,
       namespace, coalesce(name, obj->>'$.metadata.name') AS name,
       obj->>'$.roleRef.name' AS role_ref, subject_names AS subjects, code,
       CASE WHEN @MINE AND list_contains(subject_names, $identity)
            THEN 'by and for' WHEN @MINE THEN 'by' ELSE 'grants' END
           AS relation,
       source_file || ':' || source_line AS evidence
FROM r WHERE @MINE OR list_contains(subject_names, $identity)
ORDER BY ts NULLS LAST, source_file, source_line
