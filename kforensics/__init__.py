"""kforensics: Kubernetes audit-log forensics on DuckDB."""

from kforensics.case import connect
from kforensics.ingest.load import LoadResult, load

__all__ = ["LoadResult", "connect", "load"]
__version__ = "0.1.0"
