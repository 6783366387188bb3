"""Detection: YAML rules (rules/) over the `ev` table, their exceptions, findings and self-tests."""
