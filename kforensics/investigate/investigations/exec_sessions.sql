-- description: The identity's exec/attach/portforward requests, and those others made as it (`impersonated_by`), with the URL-decoded command.
-- param identity text: the identity (a user, or system:serviceaccount:NS:NAME)
-- redact: command
-- param since time?: window start, inclusive (ISO 8601, UTC if no zone; empty: the case's start)
-- param until time?: window end, exclusive (empty: the case's end)
@EXEC AND @MINE
ORDER BY ts NULLS LAST, source_file, source_line
