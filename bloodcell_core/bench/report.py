"""The benchmark report: machine description, targets with pass/fail, JSON and Markdown output.

The targets are the ones the project's issues set (latency, throughput, audit time, app
responsiveness, speed against the EfficientNetB3 baseline).  A target whose figure wasn't
measured (app skipped, say) is reported as "not measured", never as passed.
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bloodcell_core.outputs import write_text

REPORT_KEYS = ("schema", "machine", "conditions", "settings", "model", "data", "single_image", "localisation",
               "gradcam", "throughput", "audit", "review_scores", "adapt", "app", "comparison", "duration_s", "checks")
JSON_NAME = "benchmarks.json"
MARKDOWN_NAME = "benchmarks.md"
BUSY_MACHINE_SHARE = 0.15  # above this share of CPU used by other processes, the report says so


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    path: tuple[str, ...]  # where the measured figure sits in the report
    comparator: str  # "<=" or ">="
    threshold: float
    unit: str


def _targets(*rows: tuple[str, str, str, str]) -> tuple[Target, ...]:
    """Targets from (key, where in the report, dotted; the target, e.g. "<= 20 ms"; label) rows."""
    made = []
    for key, where, target, label in rows:
        comparator, threshold, unit = target.split(" ", 2)
        made.append(Target(key, label, tuple(where.split(".")), comparator, float(threshold), unit))
    return tuple(made)


TARGETS: tuple[Target, ...] = _targets(
    ("single_image_predict_p50", "single_image.predict.p50_ms", "<= 20 ms",
     "Single-image predict, median (localise + crop + model)"),
    ("localisation_p50", "localisation.p50_ms", "<= 10 ms", "Localisation + crop per image, median"),
    ("batch_throughput", "throughput.model_only_images_per_s", ">= 500 images/s",
     "Model-only batch throughput (batch 256, prepared crops)"),
    ("audit_total", "audit.total_s", "<= 15 s", "Audit hashing + duplicate search, whole dataset"),
    ("review_scores_p50", "review_scores.p50_ms", "<= 2 ms",
     "Out-of-distribution score + batch verdict added per image, median"),
    ("adapt_50", "adapt.seconds", "<= 120 s", "adapt on 50 labelled cells (cross-validation and home check included)"),
    ("app_first_render", "app.first_render_s", "<= 5 s", "App start to first render of the home page"),
    ("app_first_prediction", "app.first_prediction_s", "<= 3 s",
     "First prediction with Grad-CAM (upload to both shown)"),
    ("app_later_predictions", "app.later_predictions_max_s", "<= 0.5 s",
     "Later predictions, slowest (upload to result shown)"),
    ("app_gallery_60", "app.gallery_60_s", "<= 5 s", "Upload of 60 images to the whole cell gallery drawn"),
    ("app_gallery_200", "app.gallery_200_s", "<= 12 s", "Upload of 200 images to the whole cell gallery drawn"),
    ("app_reclassify", "app.reclassify_s", "<= 0.5 s", "One reclassification (number key) to the updated count"),
    # Model against model: preprocessing (localisation, crop) is the same for both and left out;
    # the end-to-end ratios are in the comparison table.
    ("speedup_vs_baseline", "comparison.speedup.model_only_single_p50", ">= 5 x",
     "Default model vs EfficientNetB3 per image (model-only single image, median)"),
)


def machine_info() -> dict[str, Any]:
    """CPU model, cores, RAM, OS and library versions, and the date of the run."""
    import keras
    import numpy
    import tensorflow as tf

    try:
        usable_cores = len(os.sched_getaffinity(0))
    except AttributeError:
        usable_cores = os.cpu_count()
    return {"cpu_model": _cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable_cores,
            "ram_gib": _ram_gib(), "os": platform.platform(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": numpy.__version__,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    except OSError:
        pass
    return None


def lookup(report: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = report
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def evaluate_checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per target: measured value (or None) and passed (True / False / None)."""
    checks = []
    for target in TARGETS:
        measured = lookup(report, target.path)
        if isinstance(measured, (int, float)):
            passed = measured <= target.threshold if target.comparator == "<=" else measured >= target.threshold
        else:
            measured, passed = None, None
        checks.append({"key": target.key, "label": target.label, "measured": measured, "unit": target.unit,
                       "comparator": target.comparator, "threshold": target.threshold, "passed": passed,
                       "note": _check_note(report, target, measured)})
    return checks


def _check_note(report: dict[str, Any], target: Target, measured: Any) -> str:
    section = report.get(target.path[0]) or {}
    if measured is None:
        return str(section.get("reason") or "not measured")
    if target.key == "audit_total" and section.get("source") == "generated":
        return f"on {section.get('images')} generated images (real data not present)"
    return ""


def write_reports(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write benchmarks.json and benchmarks.md into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    json_path = write_text(out / JSON_NAME, json.dumps(report, indent=2) + "\n")
    markdown_path = write_text(out / MARKDOWN_NAME, render_markdown(report))
    return markdown_path, json_path


# ---------------------------------------------------------------------------------------------
# Markdown


def format_value(value: Any, unit: str = "", digits: int | None = None) -> str:
    """A figure for the tables: thousands separators, 0-2 decimals by magnitude, "–" for missing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if digits is None:
            digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
        text = f"{value:,.{digits}f}"
    elif isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}"
    else:
        text = str(value)
    if unit == "x":
        return f"{text}×"
    return f"{text} {unit}" if unit else text


def _result(check: dict[str, Any]) -> str:
    if check["passed"] is None:
        return "not measured"
    return "**pass**" if check["passed"] else "**FAIL**"


def _latency(stats: dict[str, Any]) -> str:
    return f"p50 {format_value(stats['p50_ms'], 'ms')}, p95 {format_value(stats['p95_ms'], 'ms')}"


def _targets_table(checks: list[dict[str, Any]]) -> list[str]:
    lines = ["| Measure | Measured | Target | Result |", "|---|---:|---:|---|"]
    for check in checks:
        sign = "≤" if check["comparator"] == "<=" else "≥"
        target = f"{sign} {format_value(check['threshold'], check['unit'])}"
        measured = format_value(check["measured"], check["unit"])
        result = _result(check) + (f" ({check['note']})" if check["note"] else "")
        lines.append(f"| {check['label']} | {measured} | {target} | {result} |")
    return lines


def _conditions(report: dict[str, Any]) -> list[str]:
    conditions = report["conditions"]
    share = conditions.get("other_processes_cpu_share")
    lines = []
    if share is not None and share > BUSY_MACHINE_SHARE:
        load = format_value(conditions.get("load_average_1min_at_start"))
        lines.append(f"**Shared CPU:** other processes (e.g. a model training run) used {share:.0%} of this "
                     f"machine's CPU while the model and audit timings ran (1-minute load average {load} at "
                     "the start). The figures are therefore pessimistic; rerun on an idle machine for clean "
                     "numbers.")
    elif share is not None:
        lines.append(f"Other processes used {share:.0%} of the CPU during the model and audit timings.")
    before_app = conditions.get("other_processes_cpu_share_before_app")
    if before_app is not None and before_app > BUSY_MACHINE_SHARE:
        lines.append(f"Just before the app was timed, other processes kept {before_app:.0%} of the CPU busy.")
    if conditions.get("note"):
        lines.append(f"Note: {conditions['note']}")
    return lines


def _comparison_rows(default: dict[str, Any], baseline: dict[str, Any],
                     speedup: dict[str, float]) -> list[tuple[str, Any, Any, Any]]:
    """(figure, default, baseline, how many times faster the default is)."""
    def pair(section: str, stat: str) -> tuple[Any, Any]:
        return default[section][stat], baseline[section][stat]

    return [
        ("Single-image predict p50 (ms)", *pair("single_image_predict", "p50_ms"),
         speedup["single_image_predict_p50"]),
        ("Single-image predict p95 (ms)", *pair("single_image_predict", "p95_ms"),
         speedup["single_image_predict_p95"]),
        ("Model-only single image p50 (ms)", *pair("model_only_single", "p50_ms"), speedup["model_only_single_p50"]),
        ("Grad-CAM p50 (ms)", *pair("gradcam", "p50_ms"), speedup["gradcam_p50"]),
        (f"Batch throughput, batch {default['batch_size']} (images/s)", default["batch_images_per_s"],
         baseline["batch_images_per_s"], speedup["batch_throughput"]),
        ("Parameters", default["parameters"], baseline["parameters"], None),
    ]


def _comparison(report: dict[str, Any]) -> list[str]:
    comparison = report["comparison"]
    default, baseline = comparison["default"], comparison["baseline"]
    side = default["input_size"]
    name = f"{baseline['architecture']} {baseline['input_size']}×{baseline['input_size']}"
    lines = [f"| Figure | default ({report['model']['architecture']}, {side}×{side}) | {name} "
             "| default is × faster |", "|---|---:|---:|---:|"]
    for label, ours, theirs, ratio in _comparison_rows(default, baseline, comparison["speedup"]):
        lines.append(f"| {label} | {format_value(ours)} | {format_value(theirs)} | {format_value(ratio, 'x')} |")
    validation = comparison["accuracy"]["default_validation"]
    published = comparison["accuracy"]["baseline_published"]
    accuracy = format_value(validation.get("accuracy"), digits=3)
    balanced = format_value(validation.get("balanced_accuracy"), digits=3)
    lines += ["", f"Accuracy: the default model's card ({validation.get('card_name')}) states validation "
              f"accuracy {accuracy} (balanced {balanced}, {format_value(validation.get('n_images'))} images). "
              f"The {name} here is built untrained (weights=None) only to time it, so its accuracy is not "
              f"measured; the published pipeline using it reports {published['validation']:.0%} validation and "
              f"{published['hidden_test']:.0%} hidden-test accuracy."]
    return lines


def _app(report: dict[str, Any]) -> list[str]:
    app = report["app"]
    if app.get("status") == "skipped":
        return [f"Not measured: {app.get('reason', 'skipped')}."]
    lines = []
    if app.get("status") == "failed":
        lines += [f"**The app run failed part-way:** {app.get('reason')}. Figures up to that point:", ""]
    later = ", ".join(format_value(v, "s") for v in app.get("later_predictions_s", [])) or "–"
    lines += [f"- Start to the server answering its health check: {format_value(app.get('server_ready_s'), 's')}",
              f"- Start to first render of the home page (title shown, nothing loading): "
              f"{format_value(app.get('first_render_s'), 's')}; to the home page complete (script run "
              f"finished, model loaded): {format_value(app.get('home_complete_s'), 's')}",
              f"- Navigate to Classify: {format_value(app.get('navigation_s'), 's')}",
              f"- First prediction with Grad-CAM (upload to both images shown): "
              f"{format_value(app.get('first_prediction_s'), 's')}",
              f"- Later predictions (one more upload each, to the gallery redrawn with it): {later}",
              f"- Cell gallery, upload to every cell counted and the gallery drawn: 60 images "
              f"{format_value(app.get('gallery_60_s'), 's')}, 200 images {format_value(app.get('gallery_200_s'), 's')}",
              f"- One reclassification (a class's number key) to the updated count: "
              f"{format_value(app.get('reclassify_s'), 's')}",
              f"- Peak RSS of the app process tree (VmHWM, model loaded, after the predictions): "
              f"{format_value(app.get('peak_rss_mib'), 'MiB')}",
              f"- Browser: {app.get('browser', '–')}"]
    return lines


def _audit_line(audit: dict[str, Any]) -> str:
    if audit.get("status") != "measured":
        return f"- Audit: not measured ({audit.get('reason')})"
    return (f"- Audit on {audit['images']:,} {audit['source']} images: list {format_value(audit['list_s'], 's')}, "
            f"hash (decode included) {format_value(audit['hash_s'], 's')}, exact + near-duplicate search "
            f"{format_value(audit['search_s'], 's')}, total {format_value(audit['total_s'], 's')} "
            f"({audit['exact_duplicate_groups']} exact-duplicate groups, {audit['near_duplicate_pairs']} pairs "
            f"within {audit['hamming_threshold']} bits)")


def _details(report: dict[str, Any]) -> list[str]:
    single, gradcam, throughput = report["single_image"], report["gradcam"], report["throughput"]
    end_to_end = throughput["end_to_end"]
    return [f"- Single-image predict: {_latency(single['predict'])} ({single['predict']['n']} calls)",
            f"- Model only (`Predictor.run_prepared`, one prepared crop): {_latency(single['model_only'])}",
            f"- Localisation + crop: {_latency(report['localisation'])}",
            f"- Grad-CAM: first (cold, explainer build included) {format_value(gradcam['first_ms'], 'ms')}; "
            f"warm {_latency(gradcam['warm'])}",
            f"- Model-only throughput: {format_value(throughput['model_only_images_per_s'], 'images/s')} "
            f"(batch {throughput['batch_size']})",
            f"- End to end (decode + localise + predict) on {end_to_end['images']} {end_to_end['source']} files: "
            f"{format_value(end_to_end['images_per_s'], 'images/s')}",
            _audit_line(report["audit"])]


HOW_MEASURED = [
    "- Latencies are wall-clock times over repeated calls after warm-up calls, cycling through {n_images} "
    "images; p50/p95 are percentiles of those calls.",
    "- Single-image predict is `Predictor.predict_images([image])` on one 192×192 RGB image: localisation, crop, "
    "`predict_on_batch` and the needs-review flags. Model only is `Predictor.run_prepared` on one prepared crop: "
    "the model's forward pass(es) without decoding or localisation, so a model whose card asks for test-time "
    "views (`bloodcell_core.inference.tta`) is timed with all of them, as it serves (views a card adds only for "
    "unsure crops run for those crops, so the real images' share of unsure ones is in the figure).",
    "- Grad-CAM runs through `bloodcell_core.explain.get_explainer(model, \"Grad-CAM\")`; the first call includes "
    "building the explainer (a model clone).",
    "- Throughput is the batch size over the median time of `Predictor.run_prepared` on a full batch; end to end "
    "reads, decodes and predicts files in batches of the same size.",
    "- The audit figure is `load_dataset` + `hash_dataset` (file read and decode included) + exact and "
    "near-duplicate search from `bloodcell_core.audit`.",
    "- The app is started with `streamlit run app.py` on a free local port and driven by Playwright with headless "
    "Chromium (see `scripts/app_timing.py`); peak memory is the sum of VmHWM over the app's "
    "process tree.",
]


def _header(report: dict[str, Any]) -> list[str]:
    machine, model, data = report["machine"], report["model"], report["data"]
    duration = format_value(report["duration_s"], "s")
    crop = f"{model['crop_size']}×{model['crop_size']}"
    return ["# Benchmarks", "",
            f"Generated by `python -m bloodcell_core bench` on {machine['date']} in {duration}; rerun it to "
            "refresh this file and `benchmarks.json` (the raw figures).", "",
            f"Machine: {machine['cpu_model']}, {machine['usable_cores']} usable of {machine['logical_cores']} "
            f"logical cores, {format_value(machine['ram_gib'])} GiB RAM, no GPU used; {machine['os']}; Python "
            f"{machine['python']}, TensorFlow {machine['tensorflow']}, Keras {machine['keras']}.", "",
            *[line for item in _conditions(report) for line in (item, "")],
            f"Model: `{model['name']}` ({model['architecture']}, {crop} crops, {format_value(model['parameters'])} "
            f"parameters) from `{model['dir']}`. Images: {data['source']} ({data['root']}). Repeats: "
            f"{report['settings']['repeats']} per latency figure.", ""]


def render_markdown(report: dict[str, Any]) -> str:
    how = [line.format(n_images=report["data"]["sample_images"]) for line in HOW_MEASURED]
    lines = [*_header(report),
             "## Targets", "", *_targets_table(report["checks"]), "",
             "## Default model against the EfficientNetB3 baseline", "", *_comparison(report), "",
             "## Details", "", *_details(report), "",
             "## App", "", *_app(report), "",
             "## How it is measured", "", *how, ""]
    return "\n".join(lines)
