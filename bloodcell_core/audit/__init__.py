"""Data audit: duplicates, conflicting labels, outliers, label errors, class balance, leakage.

One module per issue type behind :class:`AuditCheck`, listed in the one table
:data:`CHECKS`; :func:`run_audit` (or :func:`cached_audit`) runs them all and returns a
JSON-ready report.  The hashing and search functions are exposed for benchmarks.
"""
from bloodcell_core.audit.base import DEFAULT_HAMMING, AuditCheck, AuditContext, AuditSettings
from bloodcell_core.audit.hashing import (HashTable, find_exact_duplicates, find_near_duplicates,
                                          hash_dataset)
from bloodcell_core.audit.registry import CHECKS
from bloodcell_core.audit.runner import cached_audit, load_predictor, run_audit

__all__ = ["CHECKS", "DEFAULT_HAMMING", "AuditCheck", "AuditContext", "AuditSettings", "HashTable",
           "cached_audit", "find_exact_duplicates", "find_near_duplicates", "hash_dataset",
           "load_predictor", "run_audit"]
