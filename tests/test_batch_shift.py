"""Abstention on real shift: Mahalanobis 'unlike the training images' flag and the batch warning."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bloodcell_core.inference.feature_density import Density, MIN_BATCH, cross_fitted_distances, fit_density
from bloodcell_core.inference.predictor import Predictor
from bloodcell_core.inference.review_flags import fit_review_policy
from tests.helpers_dashboard import build_tiny_model, tiny_model_card
from tests.helpers_images import synthetic_cell


def _clean(n: int, start: int = 0) -> list[np.ndarray]:
    return [synthetic_cell(64, seed=start + i) for i in range(n)]


def _shifted(n: int) -> list[np.ndarray]:
    """Another 'laboratory': cyan background and darker, bluer stain (channels rotated, dimmed)."""
    return [np.clip(img[..., [2, 0, 1]].astype(np.float32) * 0.7, 0, 255).astype(np.uint8)
            for img in _clean(n, 5000)]


@pytest.fixture(scope="module")
def calibrated_predictor() -> Predictor:
    model = build_tiny_model()
    card = tiny_model_card()
    probe = Predictor.from_model(model, card["classes"], card)
    images = _clean(160)
    probabilities, features = probe.predict_outputs(images)
    labels = np.arange(len(images)) % 2 + 3  # two classes
    policy = fit_review_policy(probabilities, labels, features, len(card["classes"]))
    return Predictor.from_model(model, card["classes"], {**card, "review": policy})


def test_mahalanobis_is_small_for_the_fitted_classes_and_large_far_away() -> None:
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (200, 6)), rng.normal(4, 1, (200, 6))])
    labels = np.repeat([0, 1], 200)
    density = Density(fit_density(features, labels, 3))  # class 2 has no images: ignored
    near = density.distance(rng.normal(4, 1, (50, 6)))
    far = density.distance(rng.normal(-8, 1, (50, 6)))
    assert np.median(near) < 4 < np.median(far)
    crossed = cross_fitted_distances(features, labels, 3)
    assert crossed.shape == (400,) and np.all(np.isfinite(crossed))


def test_policy_records_the_batch_threshold_from_clean_batches(calibrated_predictor: Predictor) -> None:
    policy = calibrated_predictor.policy
    assert policy.ood_score == "mahalanobis"
    fitted = policy.batch_shift
    assert fitted["n_batches"] == 100 and fitted["clean_trigger_rate"] <= 0.05
    assert policy.validation_flagged <= 0.10 + 1e-9


def test_shifted_batch_is_detected_and_clean_batch_is_not(calibrated_predictor: Predictor) -> None:
    clean = calibrated_predictor.predict_images(_clean(30, 2000))
    shifted = calibrated_predictor.predict_images(_shifted(30))
    assert not calibrated_predictor.batch_shift(clean)["detected"]
    verdict = calibrated_predictor.batch_shift(shifted)
    assert verdict["detected"] and verdict["score"] > verdict["threshold"]
    assert any("unlike the training images" in r for p in shifted for r in p.review_reasons)
    assert calibrated_predictor.batch_shift(shifted[:MIN_BATCH - 1]) is None  # too few to judge a batch


def test_predict_summary_json_has_every_key_and_warns(tmp_path, calibrated_predictor: Predictor,
                                                      capsys) -> None:
    from PIL import Image

    from bloodcell_core.cli import main
    from bloodcell_core.models.store import save_model

    model_dir = save_model(calibrated_predictor.model, calibrated_predictor.card, tmp_path / "model")
    folder = tmp_path / "lab"
    folder.mkdir()
    for i, image in enumerate(_shifted(24)):
        Image.fromarray(image).save(folder / f"cell_{i}.png")
    summary_path = tmp_path / "summary.json"
    assert main(["predict", str(folder), "--model", str(model_dir), "--out", str(tmp_path / "p.csv"),
                 "--summary", str(summary_path)]) == 0
    summary = json.loads(summary_path.read_text())
    assert set(summary) == {"n_images", "n_flagged", "batch_shift"} and summary["n_images"] == 24
    assert set(summary["batch_shift"]) == {"detected", "score", "threshold"}
    assert summary["batch_shift"]["detected"] is True
    assert sum(line.startswith("warning: ") for line in capsys.readouterr().err.splitlines()) == 1


def test_calibrate_reads_only_the_calibration_dataset(tmp_path, monkeypatch, calibrated_predictor) -> None:
    """The thresholds come from the images given to calibrate, never from another laboratory's."""
    from PIL import Image

    import bloodcell_core.data.datasets as datasets
    from bloodcell_core.cli import main
    from bloodcell_core.models.store import read_card, save_model

    model_dir = save_model(calibrated_predictor.model, calibrated_predictor.card, tmp_path / "model")
    calibration, other_lab = tmp_path / "pbc" , tmp_path / "other-lab"
    for root, images in ((calibration, _clean(40, 7000)), (other_lab, _shifted(20))):
        for i, image in enumerate(images):
            label = ("ig", "monocyte")[i % 2]
            (root / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(root / label / f"{label}_{i}.png")
    read: list[str] = []
    real_load = datasets.load_image
    monkeypatch.setattr(datasets, "load_image", lambda path: read.append(str(path)) or real_load(path))
    assert main(["calibrate", str(calibration), "--model", str(model_dir)]) == 0
    assert read and all(path.startswith(str(calibration)) for path in read)
    review = read_card(model_dir).review
    assert review.n_calibration_images == 40 and review.batch_shift["n_batches"] == 100


@pytest.fixture
def calibrated_env(dashboard_env, calibrated_predictor, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model

    model_dir = save_model(calibrated_predictor.model, calibrated_predictor.card, tmp_path / "models" / "calibrated")
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", str(model_dir.parent))
    return dashboard_env


def _warnings(app) -> list[str]:
    return [w.value for w in app.warning if "look unlike the training laboratory" in w.value]


@pytest.mark.parametrize(("batch", "banner"), [("shifted", True), ("clean", False)])
def test_classify_shows_one_banner_for_a_shifted_batch_only(calibrated_env, batch, banner) -> None:
    from tests.helpers_dashboard import open_app, png_bytes, upload

    images = _shifted(24) if batch == "shifted" else _clean(24, 3000)
    app = upload(open_app(page="pages/classify.py"), [(f"cell-{i}.png", png_bytes(img)) for i, img in enumerate(images)])
    assert len(_warnings(app)) == (1 if banner else 0)
