"""The Spark engine: the same dataset, the same `ev`, the same rules (translated), at scale."""
