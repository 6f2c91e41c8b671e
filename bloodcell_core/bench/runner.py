"""Model, preprocessing and audit timings: the numbers behind ``python -m bloodcell_core bench``.

Every figure is wall-clock time from :func:`time.perf_counter` after warm-up calls, so it is
what a user waits for on this machine, not a CPU-time estimate.  Latencies are reported as
p50/p95 over ``repeats`` calls; throughputs from the median time of whole batches.

:func:`run_benchmarks` measures everything (the app part through
:mod:`bloodcell_core.bench.app_subprocess`, which runs ``scripts/app_timing.py``) and returns one
JSON-ready report dictionary; :mod:`bloodcell_core.bench.report` writes it out.
"""
from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from bloodcell_core.models.card import ModelCard
from bloodcell_core.paths import PROJECT_ROOT, SHARED_DEV_DATA
from bloodcell_core.progress import ProgressFn

# The published pipeline this project compares against: EfficientNetB3 at 96 x 96.
BASELINE_ARCH = "efficientnetb3"
BASELINE_INPUT_SIZE = 96
BASELINE_PUBLISHED_ACCURACY = {"validation": 0.99, "hidden_test": 0.81}
DEV_SET_SIZE = 13_520  # images in ../shared/data/pbc-dev; generated stand-ins match it
SAMPLE_IMAGES = 32  # distinct images cycled through in the latency loops
ADAPT_IMAGES = 50  # labelled cells the adapt timing uses (the "adapt on 50 images")
GENERATED_SIDE = 192


@dataclass
class BenchSettings:
    """What to measure and how often (the CLI fills it from its arguments)."""

    model_dir: Path | None = None  # None: the default model
    data_dir: Path | None = None  # None: ../shared/data/pbc-dev when present, else generated images
    repeats: int = 50
    skip_app: bool = False
    batch_size: int = 256
    end_to_end_images: int = 1024
    generated_images: int = DEV_SET_SIZE  # size of the generated stand-in dataset
    baseline_arch: str = BASELINE_ARCH
    baseline_input_size: int = BASELINE_INPUT_SIZE
    note: str = ""
    screenshot_dir: Path | None = None  # app screenshots after each timed step, to check what was timed

    @property
    def batch_repeats(self) -> int:
        return max(2, self.repeats // 10)

    @property
    def gradcam_repeats(self) -> int:
        return max(2, self.repeats // 2)

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


# ---------------------------------------------------------------------------------------------
# timing primitives


def latency_stats(seconds: list[float]) -> dict[str, float | int]:
    """p50 / p95 / mean in milliseconds of per-call times."""
    values = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "mean_ms": float(values.mean()), "n": int(values.size)}


def time_calls(call: Callable[[int], Any], repeats: int, warmup: int = 2,
               progress: ProgressFn | None = None, label: str = "Timing") -> list[float]:
    """Seconds taken by ``call(i)`` for i in range(repeats), after ``warmup`` untimed calls."""
    for i in range(warmup):
        call(i)
    seconds = []
    if progress is not None:
        progress(0, repeats, label)
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - start)
        if progress is not None:
            progress(i + 1, repeats, label)
    return seconds


class CpuMeter:
    """Share of the machine's CPU used by *other* processes between start and stop.

    Busy time of the whole machine comes from /proc/stat, this process's own from
    :func:`os.times`; the difference is what competed with the benchmark (a training run,
    say).  None where /proc/stat is unavailable.
    """

    def __init__(self) -> None:
        self._start: tuple[float, float, float] | None = None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        ticks = [int(v) for v in fields[:8]]
        tick = os.sysconf("SC_CLK_TCK")
        total = sum(ticks) / tick
        idle = (ticks[3] + ticks[4]) / tick  # idle + iowait
        own = os.times()
        return total, total - idle, own.user + own.system

    def start(self) -> "CpuMeter":
        self._start = self._sample()
        return self

    def other_share(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None:
            return None
        total = end[0] - self._start[0]
        if total <= 0:
            return None
        other_busy = (end[1] - self._start[1]) - (end[2] - self._start[2])
        return float(min(1.0, max(0.0, other_busy / total)))


def background_cpu_share(seconds: float = 1.0) -> float | None:
    """Share of the machine's CPU busy over ``seconds`` while this process sleeps: what else runs."""
    meter = CpuMeter().start()
    time.sleep(seconds)
    return meter.other_share()


def load_average() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# images


def synthetic_cell(rng: np.random.Generator, side: int = GENERATED_SIDE) -> np.ndarray:
    """A stained-smear look-alike: tinted smooth background, pink cytoplasm, purple nucleus.

    Random smooth background fields and cell placement keep perceptual hashes apart, so a
    generated dataset has no accidental near duplicates.
    """
    field_rgb = rng.uniform(200, 245, size=(6, 6, 3)).astype(np.uint8)
    image = np.asarray(Image.fromarray(field_rgb).resize((side, side), Image.BICUBIC), dtype=np.float32)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    cy, cx = rng.uniform(0.35, 0.65, size=2) * side
    cell_r, nucleus_r = rng.uniform(0.18, 0.28) * side, rng.uniform(0.08, 0.14) * side
    stretch = rng.uniform(0.7, 1.3)
    cell = (yy - cy) ** 2 + (xx - cx) ** 2 <= cell_r ** 2
    nucleus = ((yy - cy) * stretch) ** 2 + ((xx - cx) / stretch) ** 2 <= nucleus_r ** 2
    image[cell] = rng.uniform([190, 150, 180], [215, 175, 205])
    image[nucleus] = rng.uniform([90, 40, 130], [125, 75, 170])
    image += rng.normal(0, 4, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_generated_dataset(root: Path, n_images: int, classes: list[str], seed: int = 0,
                            progress: ProgressFn | None = None) -> Path:
    """A class-folder dataset of ``n_images`` generated JPEGs; every 500th is a byte copy
    of its predecessor, so the duplicate search has something to find."""
    rng = np.random.default_rng(seed)
    previous = b""
    for i in range(n_images):
        folder = root / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        data = previous if i % 500 == 499 else jpeg_bytes(synthetic_cell(rng))
        (folder / f"generated_{i:05d}.jpg").write_bytes(data)
        previous = data
        if progress is not None and ((i + 1) % 256 == 0 or i + 1 == n_images):
            progress(i + 1, n_images, "Generating images")
    return root


def spread_indices(n_items: int, n_wanted: int) -> np.ndarray:
    """``n_wanted`` indices evenly spread over ``n_items`` (so every class folder is sampled)."""
    return np.unique(np.linspace(0, n_items - 1, num=min(n_items, n_wanted)).round().astype(np.int64))


def sample_files(data_dir: Path, n_wanted: int) -> list[Path]:
    from bloodcell_core.data.datasets import load_dataset

    dataset = load_dataset(data_dir)
    return [Path(dataset.items[i]) for i in spread_indices(len(dataset), n_wanted)]


def load_images(files: list[Path]) -> list[np.ndarray]:
    from bloodcell_core.data.images import load_image

    return [load_image(path) for path in files]


def cycle(items: list[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)]


# ---------------------------------------------------------------------------------------------
# measurements


def bench_localisation(images: list[np.ndarray], crop_size: int, repeats: int,
                       progress: ProgressFn | None = None) -> dict[str, Any]:
    """Localisation plus crop (``localise_and_crop``, exactly what the Predictor runs)."""
    from bloodcell_core.preprocess.localise import localise_and_crop

    seconds = time_calls(lambda i: localise_and_crop(images[i % len(images)], crop_size), repeats,
                         progress=progress, label="Localisation")
    return latency_stats(seconds)


def bench_model(predictor: Any, images: list[np.ndarray], settings: BenchSettings,
                progress: ProgressFn | None = None, name: str = "model") -> dict[str, Any]:
    """Single-image latency, model-only latency, Grad-CAM (cold and warm), batch throughput."""
    from bloodcell_core.explain import clear_explainer_cache, get_explainer

    model = predictor.model
    crops = [predictor.prepare(image)[0] for image in images]
    single = time_calls(lambda i: predictor.predict_images([images[i % len(images)]], batch_size=1),
                        settings.repeats, progress=progress, label=f"{name}: single-image predict")
    model_only = time_calls(lambda i: predictor.run_prepared(crops[i % len(crops)][np.newaxis]),
                            settings.repeats, progress=progress, label=f"{name}: model-only predict")
    targets = [int(np.argmax(model.predict_on_batch(crop[np.newaxis])[0])) for crop in crops]

    clear_explainer_cache()
    start = time.perf_counter()
    get_explainer(model, "Grad-CAM").explain(crops[0], targets[0])
    gradcam_first_s = time.perf_counter() - start
    explainer = get_explainer(model, "Grad-CAM")
    gradcam = time_calls(lambda i: explainer.explain(crops[i % len(crops)], targets[i % len(crops)]),
                         settings.gradcam_repeats, warmup=1, progress=progress, label=f"{name}: Grad-CAM")
    clear_explainer_cache()

    batch = np.stack(cycle(crops, settings.batch_size))
    batch_seconds = time_calls(lambda i: predictor.run_prepared(batch), settings.batch_repeats, warmup=1,
                               progress=progress, label=f"{name}: batch {settings.batch_size}")
    return {
        "single_image_predict": latency_stats(single),
        "model_only_single": latency_stats(model_only),
        "gradcam_first_ms": gradcam_first_s * 1000.0,
        "gradcam": latency_stats(gradcam),
        "batch_size": settings.batch_size,
        "batch_images_per_s": settings.batch_size / float(np.median(batch_seconds)),
        "parameters": int(model.count_params()),
        "input_size": int(model.inputs[0].shape[1]),
        "test_time_views": list(predictor.tta_views),
        "extra_views_where_unsure": list(predictor.extra_views),
    }


def bench_review_scores(predictor: Any, images: list[np.ndarray], repeats: int) -> dict[str, Any]:
    """What the out-of-distribution score and the batch verdict add to one prediction, per image."""
    from bloodcell_core.inference.review_flags import ood_scorer

    scorer = ood_scorer(predictor.policy)
    if scorer is None:
        return {"status": "skipped", "reason": "the model card has no out-of-distribution statistics"}
    features = predictor.run_prepared(predictor.prepare_batch(images[:1]))[1]
    predictions = predictor.predict_images(images[:20])
    seconds = time_calls(lambda i: (scorer(features), predictor.batch_shift(predictions[:1])), repeats)
    return {"score": predictor.policy.ood_score or "cosine", **latency_stats(seconds)}


def bench_adapt(predictor: Any, files: list[Path], model_dir: Path) -> dict[str, Any]:
    """``adapt`` as the command runs it (home check included) on labelled cells from the data's class folders."""
    from bloodcell_core.adaptation.adapt import adapt
    from bloodcell_core.classes import normalise_class_name
    from bloodcell_core.data.datasets import Dataset

    names = [normalise_class_name(path.parent.name) for path in files]
    known = [(path, name) for path, name in zip(files, names) if name in predictor.classes]
    if len({name for _, name in known}) < 2:
        return {"status": "skipped", "reason": "fewer than 2 of the model's classes among the sample"}
    classes = sorted({name for _, name in known}, key=predictor.classes.index)
    dataset = Dataset("bench-sample", classes, [str(path) for path, _ in known],
                      np.array([classes.index(name) for _, name in known], dtype=np.int64))
    from bloodcell_core.errors import BloodcellError

    started = time.perf_counter()
    try:
        _model, card = adapt(predictor, dataset, None, parent_dir=model_dir)
    except BloodcellError as error:
        return {"status": "skipped", "reason": f"adapt refused: {error}"}
    home = card.adaptation.get("home_check")
    return {"n_images": len(known), "seconds": time.perf_counter() - started,
            "home_check_images": None if home is None else home["n_images"]}


def bench_end_to_end(predictor: Any, files: list[Path], batch_size: int,
                     progress: ProgressFn | None = None) -> dict[str, Any]:
    """Files on disk to predictions: decode + localise + crop + predict, batch by batch."""
    from bloodcell_core.data.images import load_image

    predictor.predict_images([load_image(files[0])], batch_size=1)  # warm
    start = time.perf_counter()
    for first in range(0, len(files), batch_size):
        images = [load_image(path) for path in files[first:first + batch_size]]
        predictor.predict_images(images, batch_size=batch_size)
        if progress is not None:
            progress(min(first + batch_size, len(files)), len(files), "End-to-end predict")
    seconds = time.perf_counter() - start
    return {"images": len(files), "seconds": seconds, "images_per_s": len(files) / seconds}


def bench_audit(data_dir: Path, progress: ProgressFn | None = None) -> dict[str, Any]:
    """The data audit's hashing and duplicate search over a whole dataset, decode included."""
    try:
        from bloodcell_core.audit import DEFAULT_HAMMING, find_exact_duplicates, find_near_duplicates, hash_dataset
    except ImportError as exc:
        return {"status": "skipped", "reason": f"audit functions unavailable ({exc})"}
    from bloodcell_core.data.datasets import load_dataset

    start = time.perf_counter()
    dataset = load_dataset(data_dir)
    listed = time.perf_counter()
    hashes = hash_dataset(dataset, progress=progress)
    hashed = time.perf_counter()
    exact = find_exact_duplicates(hashes)
    near = find_near_duplicates(hashes, DEFAULT_HAMMING)
    done = time.perf_counter()
    return {"status": "measured", "images": len(dataset), "unreadable": len(hashes.failures),
            "list_s": listed - start, "hash_s": hashed - listed, "search_s": done - hashed,
            "total_s": done - start, "exact_duplicate_groups": len(exact),
            "near_duplicate_pairs": len(near.pairs), "hamming_threshold": DEFAULT_HAMMING}


def ratios(default: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """How many times faster the default model is than the baseline (> 1: default faster)."""
    def slower(section: str, stat: str) -> float:
        return baseline[section][stat] / default[section][stat]

    return {
        "single_image_predict_p50": slower("single_image_predict", "p50_ms"),
        "single_image_predict_p95": slower("single_image_predict", "p95_ms"),
        "model_only_single_p50": slower("model_only_single", "p50_ms"),
        "gradcam_p50": slower("gradcam", "p50_ms"),
        "batch_throughput": default["batch_images_per_s"] / baseline["batch_images_per_s"],
    }


def validation_accuracy(card: ModelCard | dict[str, Any]) -> dict[str, Any]:
    """The default model's validation figures as its card states them."""
    card = ModelCard.of(card)
    validation = card.validation
    return {"accuracy": validation.get("accuracy"), "balanced_accuracy": validation.get("balanced_accuracy"),
            "n_images": validation.get("n_images"), "card_name": card.name}


# ---------------------------------------------------------------------------------------------
# the whole run


@dataclass
class _Data:
    source: str  # "real" or "generated"
    root: Path
    files: list[Path] = field(default_factory=list)


def _resolve_data(settings: BenchSettings, classes: list[str], scratch: Path,
                  progress: ProgressFn | None) -> _Data:
    if settings.data_dir is not None:
        from bloodcell_core.errors import DatasetError

        if not Path(settings.data_dir).is_dir():
            raise DatasetError(f"{settings.data_dir}: no such data folder")
        return _Data("real", Path(settings.data_dir))
    if SHARED_DEV_DATA.is_dir():
        return _Data("real", SHARED_DEV_DATA)
    root = write_generated_dataset(scratch / "generated", settings.generated_images, classes, progress=progress)
    return _Data("generated", root)


def _spread(items: list[Any], n_wanted: int) -> list[Any]:
    return [items[i] for i in spread_indices(len(items), n_wanted)]


def display_path(path: str | Path) -> str:
    """A path for the report: relative to the project when it is inside the project's parent
    (``models/default``, ``../shared/data/pbc-dev``), so no machine's absolute paths are committed."""
    resolved = Path(path).resolve()
    if resolved.is_relative_to(PROJECT_ROOT.parent):
        return os.path.relpath(resolved, PROJECT_ROOT)
    return str(path)


def _measure(settings: BenchSettings, predictor: Any, data: _Data, images: list[np.ndarray],
             progress: ProgressFn | None) -> dict[str, Any]:
    """Every in-process measurement: the default model, preprocessing, audit, the baseline."""
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.models.architectures import build_model

    measured = {
        "localisation": bench_localisation(images, predictor.crop_size, settings.repeats, progress),
        "default": bench_model(predictor, images, settings, progress, name="default"),
        "end_to_end": bench_end_to_end(predictor, data.files[:settings.end_to_end_images], settings.batch_size,
                                       progress),
        "audit": bench_audit(data.root, progress),
        "review_scores": bench_review_scores(predictor, images, settings.repeats),
    }
    baseline_model = build_model(settings.baseline_arch, len(predictor.classes), settings.baseline_input_size)
    measured["baseline"] = bench_model(Predictor.from_model(baseline_model, predictor.classes), images, settings,
                                       progress, name=settings.baseline_arch)
    return measured


def run_benchmarks(settings: BenchSettings, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Measure everything; returns the report dictionary (see :mod:`bloodcell_core.bench.report`)."""
    from bloodcell_core.bench.app_subprocess import time_app
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.models.store import resolve_model_dir

    started = time.perf_counter()
    meter = CpuMeter().start()
    conditions: dict[str, Any] = {"load_average_1min_at_start": load_average(), "note": settings.note,
                                  "other_processes_cpu_share_before_app": None}
    model_dir = resolve_model_dir(settings.model_dir)
    predictor = Predictor.load(model_dir)
    with tempfile.TemporaryDirectory(prefix="bloodcell-bench-") as scratch_name:
        scratch = Path(scratch_name)
        data = _resolve_data(settings, predictor.classes, scratch, progress)
        data.files = sample_files(data.root, max(SAMPLE_IMAGES, settings.end_to_end_images))
        images = load_images(_spread(data.files, SAMPLE_IMAGES))
        measured = _measure(settings, predictor, data, images, progress)
        measured["adapt"] = bench_adapt(predictor, _spread(data.files, ADAPT_IMAGES), model_dir)
        conditions["other_processes_cpu_share"] = meter.other_share()
        if settings.skip_app:
            app = {"status": "skipped", "reason": "--skip-app given"}
        else:
            conditions["other_processes_cpu_share_before_app"] = background_cpu_share()
            singles = _spread(data.files, 3)
            batch = [path for path in _spread(data.files, 203) if path not in singles][:200]
            app = time_app(model_dir, singles, scratch / "app", progress, screenshot_dir=settings.screenshot_dir,
                           batch_files=batch)
    conditions["load_average_1min_at_end"] = load_average()
    return _assemble(settings, predictor, model_dir, data, len(images), measured, app, conditions,
                     time.perf_counter() - started)


def _assemble(settings: BenchSettings, predictor: Any, model_dir: Path, data: _Data, n_images: int,
              measured: dict[str, Any], app: dict[str, Any], conditions: dict[str, Any],
              duration_s: float) -> dict[str, Any]:
    """The report dictionary, checks included (keys: :data:`bloodcell_core.bench.report.REPORT_KEYS`)."""
    from bloodcell_core.bench.report import evaluate_checks, machine_info

    default, baseline = measured["default"], measured["baseline"]
    report = {
        "schema": 1,
        "machine": machine_info(),
        "conditions": conditions,
        "settings": {**settings.to_dict(), "model_dir": display_path(model_dir),
                     "data_dir": display_path(data.root) if data.source == "real" else None},
        "model": {"dir": display_path(model_dir), "name": predictor.name,
                  "architecture": predictor.card.architecture, "crop_size": predictor.crop_size,
                  "parameters": default["parameters"], "validation": validation_accuracy(predictor.card)},
        "data": {"source": data.source, "sample_images": n_images,
                 "root": display_path(data.root) if data.source == "real" else "generated (temporary)"},
        "single_image": {"predict": default["single_image_predict"], "model_only": default["model_only_single"]},
        "localisation": measured["localisation"],
        "gradcam": {"first_ms": default["gradcam_first_ms"], "warm": default["gradcam"]},
        "throughput": {"batch_size": settings.batch_size, "model_only_images_per_s": default["batch_images_per_s"],
                       "end_to_end": {**measured["end_to_end"], "source": data.source}},
        "audit": {**measured["audit"], "source": data.source},
        "review_scores": measured["review_scores"],
        "adapt": measured["adapt"],
        "app": app,
        "comparison": {
            "baseline": {"architecture": settings.baseline_arch, "input_size": settings.baseline_input_size,
                         "weights": None, **baseline},
            "default": default,
            "speedup": ratios(default, baseline),
            "accuracy": {"default_validation": validation_accuracy(predictor.card),
                         "baseline": "not measured: built untrained here (weights=None)",
                         "baseline_published": BASELINE_PUBLISHED_ACCURACY},
        },
        "duration_s": duration_s,
    }
    report["checks"] = evaluate_checks(report)
    return report
