"""The errors a user can cause, all under one base: catch `KforensicsError` to catch them all."""

from __future__ import annotations


class KforensicsError(Exception):
    """Base of every error caused by input, a case, a rule or a request: the message says what."""


class CaseError(KforensicsError):
    """A case file that cannot be opened: missing, locked by another process, or not DuckDB."""


class InputError(KforensicsError):
    """A path given to load that cannot be read at all."""


class RuleError(KforensicsError):
    """A rule file that is not a valid rule: the message names the file and the problem."""


class RuleSQLError(KforensicsError):
    """A rule whose SQL does not run: the message names the rule file."""


class ExceptionsError(KforensicsError):
    """An exceptions file that cannot be used: the message names the file and the entry."""


class QueryError(KforensicsError):
    """A named investigation that does not exist, or a parameter it does not take."""


class ReportError(KforensicsError):
    """A report could not be produced (bad notebook, parameter, case, or a failing cell)."""


class ManifestError(KforensicsError):
    """A cluster-object dump that cannot be read: the message names the file."""


class LabelGapError(KforensicsError, ValueError):
    """Pods of one owner have labels that a policy selector tells apart."""


class SensitiveError(KforensicsError):
    """A sensitive-workloads file that cannot be used: the message names the file and the line."""


class DatasetError(KforensicsError):
    """A Parquet dataset that cannot be written or read: the message names the folder."""


class SparkError(KforensicsError):
    """The Spark engine cannot run: no pyspark, no Java, or no cluster to reach."""
