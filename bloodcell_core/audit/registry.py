"""The one table of audit checks, in report order.  Add a check: write its module, list it here."""
from __future__ import annotations

from bloodcell_core.audit.base import AuditCheck
from bloodcell_core.audit.class_balance import ClassBalance
from bloodcell_core.audit.conflicting_labels import ConflictingLabels
from bloodcell_core.audit.exact_duplicates import ExactDuplicates
from bloodcell_core.audit.label_issues import LabelIssues
from bloodcell_core.audit.leakage import Leakage
from bloodcell_core.audit.near_duplicates import NearDuplicates
from bloodcell_core.audit.outliers import Outliers

CHECKS: dict[str, AuditCheck] = {check.name: check for check in (
    ClassBalance(),
    ConflictingLabels(),
    ExactDuplicates(),
    NearDuplicates(),
    Outliers(),
    LabelIssues(),
    Leakage(),
)}
