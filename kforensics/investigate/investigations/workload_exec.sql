-- description: Exec/attach/portforward into the namespace's pods, with the decoded command.
-- param namespace text: the namespace
-- param pod text?: only this pod
-- redact: command
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
@EXEC AND namespace = $namespace AND ($pod::VARCHAR IS NULL OR name = $pod)
ORDER BY ts NULLS LAST, source_file, source_line
