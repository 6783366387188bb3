"""A case as a Parquet dataset (`export`), and reading one back (`layout`)."""
