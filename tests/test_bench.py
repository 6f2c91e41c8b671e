"""The benchmark command on a tiny model and generated images: report shape, not timings."""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from bloodcell_core.bench import report as bench_report  # noqa: E402
from bloodcell_core.bench import runner  # noqa: E402
from bloodcell_core.bench.cli import settings_from_args  # noqa: E402
from bloodcell_core.classes import CANONICAL_CLASSES  # noqa: E402
from bloodcell_core.cli import build_parser  # noqa: E402
from bloodcell_core.errors import BloodcellError  # noqa: E402
from scripts.app_timing import app_unavailable_reason, peak_rss_mib, process_tree, time_app  # noqa: E402

TINY_SIDE = 32


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bloodcell_core.models.architectures import build_model
    from bloodcell_core.models.store import save_model

    # width 0.5, not 0.25: at 0.25 TF 2.21's CPU conv gradient corrupts memory (Grad-CAM aborts)
    model = build_model("compact", len(CANONICAL_CLASSES), TINY_SIDE, width=0.5)
    card = {"name": "tiny-bench", "classes": list(CANONICAL_CLASSES), "input_size": TINY_SIDE,
            "crop_size": TINY_SIDE, "architecture": "compact",
            "validation": {"accuracy": 0.5, "balanced_accuracy": 0.45, "n_images": 10}}
    return save_model(model, card, tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture(scope="module")
def bench_output(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One tiny run on generated images (real data hidden), written to a temp folder."""
    patch = pytest.MonkeyPatch()
    patch.setattr(runner, "SHARED_DEV_DATA", tmp_path_factory.mktemp("nowhere") / "pbc-dev")
    settings = runner.BenchSettings(model_dir=tiny_model_dir, repeats=2, skip_app=True, batch_size=8,
                                    end_to_end_images=12, generated_images=40, baseline_arch="compact",
                                    baseline_input_size=TINY_SIDE, note="test run")
    try:
        report = runner.run_benchmarks(settings)
    finally:
        patch.undo()
    out_dir = tmp_path_factory.mktemp("docs")
    bench_report.write_reports(report, out_dir)
    return report, out_dir


def test_reports_are_written_with_every_key(bench_output: tuple[dict, Path]) -> None:
    report, out_dir = bench_output
    saved = json.loads((out_dir / "benchmarks.json").read_text())
    assert set(bench_report.REPORT_KEYS) <= set(saved)
    for key in ("cpu_model", "logical_cores", "ram_gib", "python", "tensorflow", "keras", "date"):
        assert saved["machine"][key] not in (None, "")
    assert {"other_processes_cpu_share", "load_average_1min_at_start"} <= set(saved["conditions"])
    assert set(saved["single_image"]) == {"predict", "model_only"}
    assert {"p50_ms", "p95_ms", "n"} <= set(saved["single_image"]["predict"])
    assert saved["single_image"]["predict"]["n"] == 2
    assert {"first_ms", "warm"} <= set(saved["gradcam"])
    assert saved["throughput"]["batch_size"] == 8
    assert saved["throughput"]["end_to_end"]["images"] == 12
    assert set(saved["comparison"]["speedup"]) == {"single_image_predict_p50", "single_image_predict_p95",
                                                   "model_only_single_p50", "gradcam_p50", "batch_throughput"}
    assert saved["comparison"]["accuracy"]["default_validation"]["accuracy"] == 0.5
    assert [c["key"] for c in saved["checks"]] == [t.key for t in bench_report.TARGETS]


def test_generated_data_is_labelled_and_audited(bench_output: tuple[dict, Path]) -> None:
    report, _ = bench_output
    assert report["data"]["source"] == "generated"
    audit = report["audit"]
    assert audit["status"] == "measured" and audit["source"] == "generated"
    assert audit["images"] == 40
    assert audit["exact_duplicate_groups"] == 0  # the byte copy is the 500th image; 40 have none
    audit_check = next(c for c in report["checks"] if c["key"] == "audit_total")
    assert "generated" in audit_check["note"]


def test_markdown_has_the_targets_table(bench_output: tuple[dict, Path]) -> None:
    report, out_dir = bench_output
    markdown = (out_dir / "benchmarks.md").read_text()
    assert "| Measure | Measured | Target | Result |" in markdown
    for target in bench_report.TARGETS:
        assert target.label in markdown
    assert "| Figure | default (compact, 32×32) |" in markdown
    assert "Note: test run" in markdown
    assert "Not measured: --skip-app given." in markdown


def test_skipped_app_targets_are_not_measured_not_passed(bench_output: tuple[dict, Path]) -> None:
    report, _ = bench_output
    app_checks = [c for c in report["checks"] if c["key"].startswith("app_")]
    assert len(app_checks) == 6
    assert all(c["passed"] is None and c["measured"] is None for c in app_checks)
    assert all(c["note"] == "--skip-app given" for c in app_checks)


def test_checks_compare_against_thresholds() -> None:
    report = {"single_image": {"predict": {"p50_ms": 19.0}}, "localisation": {"p50_ms": 12.0},
              "throughput": {"model_only_images_per_s": 500.0}, "audit": {"status": "skipped", "reason": "no"},
              "review_scores": {"p50_ms": 2.5}, "adapt": {"seconds": 75.0},
              "app": {"first_render_s": 4.0, "first_prediction_s": None},
              "comparison": {"speedup": {"model_only_single_p50": 4.9}}}
    passed = {c["key"]: c["passed"] for c in bench_report.evaluate_checks(report)}
    assert passed == {"single_image_predict_p50": True, "localisation_p50": False, "batch_throughput": True,
                      "audit_total": None, "review_scores_p50": False, "adapt_50": True, "app_first_render": True, "app_first_prediction": None,
                      "app_later_predictions": None, "app_gallery_60": None, "app_gallery_200": None,
                      "app_reclassify": None, "speedup_vs_baseline": False}


def test_latency_stats_percentiles() -> None:
    stats = runner.latency_stats([0.001 * i for i in range(1, 101)])
    assert stats["n"] == 100
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p95_ms"] == pytest.approx(95.05)


def test_app_skips_with_reason_when_chromium_or_app_is_missing(tmp_path: Path) -> None:
    assert "Chromium not found" in app_unavailable_reason(chromium=tmp_path / "no-chromium")
    assert "app.py not found" in app_unavailable_reason(project_root=tmp_path)


def test_app_part_reports_a_browser_that_does_not_start(tmp_path: Path) -> None:
    pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    project = tmp_path / "project"
    (project / "pages").mkdir(parents=True)
    (project / "app.py").write_text("import streamlit as st\n")
    (project / "pages" / "classify.py").write_text("import streamlit as st\n")
    broken_chromium = tmp_path / "chromium"
    broken_chromium.write_text("#!/bin/sh\nexit 1\n")
    broken_chromium.chmod(0o755)
    images = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    result = time_app(tmp_path / "model", images, tmp_path / "scratch", project_root=project,
                      chromium=broken_chromium)
    assert result["status"] == "skipped"
    assert result["reason"].startswith("Chromium did not start")


FAKE_TIMING_SCRIPT = """
import argparse, json, pathlib
parser = argparse.ArgumentParser()
parser.add_argument("images", nargs="+")
parser.add_argument("--batch", nargs="*", default=[])
for name in ("--model", "--scratch", "--out", "--screenshots"):
    parser.add_argument(name)
args = parser.parse_args()
print("progress 1 2", flush=True)
print("progress 2 2", flush=True)
pathlib.Path(args.out).write_text(json.dumps({"status": "measured", "images": args.images, "batch": args.batch}))
"""


def test_bench_runs_the_app_timing_script_and_reads_its_result(tmp_path: Path) -> None:
    from bloodcell_core.bench.app_subprocess import time_app as bench_time_app

    assert bench_time_app(tmp_path, [], tmp_path, script=tmp_path / "none.py")["status"] == "skipped"
    script = tmp_path / "scripts" / "app_timing.py"
    script.parent.mkdir()
    script.write_text(FAKE_TIMING_SCRIPT)
    seen = []
    result = bench_time_app(tmp_path / "model", [Path("a.jpg"), Path("b.jpg")], tmp_path / "scratch",
                            lambda done, total, label: seen.append((done, total, label)),
                            batch_files=[Path("c.jpg")], script=script)
    assert result == {"status": "measured", "images": ["a.jpg", "b.jpg"], "batch": ["c.jpg"]}
    assert seen == [(1, 2, "App timing"), (2, 2, "App timing")]
    script.write_text("print('boom')\nraise SystemExit(3)\n")
    failed = bench_time_app(tmp_path / "model", [Path("a.jpg")], tmp_path / "scratch", script=script)
    assert failed == {"status": "failed", "reason": "app_timing.py exited with code 3: boom"}


def test_peak_rss_covers_this_process() -> None:
    assert os.getpid() in process_tree(os.getpid())
    assert peak_rss_mib(os.getpid()) > 1.0


def test_cli_arguments_become_settings() -> None:
    args = build_parser().parse_args(["bench", "--model", "m", "--data", "d", "--skip-app", "--repeats", "7",
                                      "--out-dir", "out"])
    settings = settings_from_args(args)
    assert (settings.model_dir, settings.data_dir, settings.skip_app, settings.repeats) == (
        Path("m"), Path("d"), True, 7)
    assert args.out_dir == "out"
    with pytest.raises(BloodcellError, match="--repeats"):
        settings_from_args(build_parser().parse_args(["bench", "--repeats", "0"]))


def test_synthetic_cells_are_found_by_localisation() -> None:
    from bloodcell_core.preprocess.localise import localise

    rng = np.random.default_rng(3)
    found = [localise(runner.synthetic_cell(rng)).found for _ in range(10)]
    assert all(found)
