"""Benchmarks behind ``python -m bloodcell_core bench``: timings against the project's targets.

:func:`run_benchmarks` measures (model, localisation, Grad-CAM, throughput, audit, the
EfficientNetB3 baseline and, unless skipped, the app in a browser) and returns a report
dictionary; :func:`write_reports` writes it as ``benchmarks.md`` and ``benchmarks.json``.
"""
from bloodcell_core.bench.report import REPORT_KEYS, TARGETS, evaluate_checks, render_markdown, write_reports
from bloodcell_core.bench.runner import BenchSettings, run_benchmarks

__all__ = ["REPORT_KEYS", "TARGETS", "BenchSettings", "evaluate_checks", "render_markdown", "run_benchmarks",
           "write_reports"]
