-- description: The credentials an identity could have taken: secrets it read or listed (no values), tokens it requested, and exec commands that read token, key or kubeconfig files.
-- what: 'secret' (name NULL: a list or watch of every secret in namespace, or in all namespaces when namespace is NULL), 'token-request' (a service account's token), 'exec-read' (command: a credential file read inside pod namespace/name).
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
-- redact: command
WITH c AS (
    SELECT CASE WHEN resource = 'secrets' THEN 'secret'
                WHEN resource = 'serviceaccounts' THEN 'token-request'
                ELSE 'exec-read' END AS what,
           namespace, name,
           CASE WHEN subresource = 'exec' THEN @COMMAND END AS command,
           verb, ts, source_file, source_line
    FROM requests
    WHERE @MINE AND coalesce(code, 200) < 400 AND @W(ts)
      AND ((resource = 'secrets' AND subresource IS NULL AND verb IN ('get', 'list', 'watch'))
           OR (resource = 'serviceaccounts' AND subresource = 'token' AND verb = 'create')
           OR (resource = 'pods' AND subresource = 'exec'))
)
SELECT what, namespace, name, command, list(DISTINCT verb ORDER BY verb) AS verbs,
       min(ts) AS first_seen, count(*) AS requests,
       list(source_file || ':' || source_line ORDER BY ts NULLS LAST, source_file, source_line)
           AS evidence
FROM c
WHERE what <> 'exec-read'
   OR regexp_matches(coalesce(command, ''),
        'serviceaccount/token|/var/run/secrets|kubelet\.conf|/etc/kubernetes|/var/lib/kubelet|'
        || '\.kube/config|kubeconfig|/pki/|\.key\b|id_rsa|credentials')
GROUP BY ALL
ORDER BY first_seen NULLS LAST, what, namespace, name
