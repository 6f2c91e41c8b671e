"""The Robustness page (AppTest, tiny model, generated images) and its tables and figures."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from bloodcell_core.robustness.corruptions import GAUSSIAN_SIGMAS
from dashboard import robustness_view as view
from tests.helpers_dashboard import open_app
from tests.helpers_images import write_class_folders


@pytest.fixture
def robustness_data(dashboard_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_class_folders(tmp_path / "robust-root" / "cells", ["lymphocyte", "monocyte"], per_class=3, size=48)
    monkeypatch.setenv("BLOODCELL_DATA_ROOTS", str(root.parent))
    return root


def open_robustness() -> AppTest:
    return open_app(page="pages/robustness.py")


def chart_specs(app: AppTest) -> list[str]:
    return [chart.proto.spec for chart in app.get("plotly_chart")]


def test_robustness_page_draws_curves_heatmap_noise_and_gallery(robustness_data):
    app = open_robustness()
    assert any("Press the button" in i.value for i in app.info)
    app.button(key="rob_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    summary = app.dataframe[0].value
    assert list(summary.columns) == ["tiny-dashboard-test"]
    assert summary.loc["Images", "tiny-dashboard-test"] == "6"
    assert summary.loc["Clean accuracy", "tiny-dashboard-test"] == "50.0%"  # always predicts lymphocyte
    specs = chart_specs(app)
    curves = next(s for s in specs if "Accuracy versus severity" in s)
    assert all(name in curves for name in ("defocus blur", "stain deposit", "bubble"))
    assert any("Recall drop per class" in s for s in specs)
    assert any("under Gaussian noise" in s for s in specs)
    first = app.get("image")[0].proto.imgs[0].url
    assert app.get("image")[1].proto.imgs[0].caption == "Grad-CAM for lymphocyte"
    app.slider(key="rob_gallery_level_pixelate").set_value(5).run()
    assert not app.exception and app.get("image")[0].proto.imgs[0].url != first
    assert app.get("image")[0].proto.imgs[0].caption == "pixelate, severity 5"
    app.radio(key="rob_metric").set_value("balanced_accuracy").run()  # cached: no new run, no button
    assert not app.exception and not [b for b in app.button if b.key == "rob_run"]
    assert any("Balanced accuracy versus severity" in s for s in chart_specs(app))


def test_robustness_compares_two_models_on_the_same_images(robustness_data, tiny_model_dir, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    second = save_model(build_tiny_model(), tiny_model_card("second-model"), tmp_path / "others" / "second")
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", os.pathsep.join([str(tiny_model_dir.parent), str(second.parent)]))
    app = open_robustness()
    app.selectbox(key="rob_compare").select(str(second.resolve())).run()
    app.number_input(key="rob_sample").set_value(4).run()
    app.button(key="rob_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert list(app.dataframe[0].value.columns) == ["tiny-dashboard-test", "second-model"]
    specs = chart_specs(app)
    assert any("model against model" in s for s in specs)
    noise = next(s for s in specs if "under Gaussian noise" in s)
    assert "second-model" in noise and "tiny-dashboard-test" in noise


def test_robustness_page_says_when_the_model_trained_on_these_corruptions(robustness_data, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    card = {**tiny_model_card("trained-on-corruptions"), "config": {"corruption_variants": 1}}
    model_dir = save_model(build_tiny_model(), card, tmp_path / "models" / "corrupted")
    app = open_robustness()
    assert not any("of a kind it has seen" in c.value for c in app.caption)  # the tiny model's card: no such config
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", str(model_dir.parent))
    app = open_robustness()
    assert not app.exception, [e.value for e in app.exception]
    assert any("one copy of each training image" in c.value and "of a kind it has seen" in c.value
               for c in app.caption)


def test_trained_on_corruptions_note_follows_the_cards_config():
    assert view.trained_on_corruptions_note({}) is None
    assert view.trained_on_corruptions_note({"corruption_variants": 0}) is None
    assert "one copy" in view.trained_on_corruptions_note({"corruption_variants": 1})
    assert "3 copies" in view.trained_on_corruptions_note({"corruption_variants": 3})


# -- tables and figures ----------------------------------------------------------------------------

def fake_report(clean: float = 0.8) -> dict:
    """A report shaped like run_robustness's: two corruptions, 2 severities, two noise levels."""
    def entry(severity: int, accuracy: float, recall_a: float, recall_b: float, **extra) -> dict:
        return {"severity": severity, "accuracy": accuracy, "balanced_accuracy": (recall_a + recall_b) / 2,
                "per_class_recall": {"ig": recall_a, "monocyte": recall_b}, **extra}

    return {"classes": ["ig", "monocyte", "platelet"], "n_images": 10, "severities": [1, 2],
            "clean": {"accuracy": clean, "balanced_accuracy": 0.75, "per_class_recall": {"ig": 0.9, "monocyte": 0.6}},
            "corruptions": {"pixelate": [entry(1, 0.7, 0.8, 0.6), entry(2, 0.5, 0.4, 0.6)],
                            "bubble": [entry(1, 0.8, 0.9, 0.5), entry(2, 0.6, 0.9, 0.3)],
                            "gaussian_noise": [entry(1, 0.7, 0.9, 0.5, sigma=0.02),
                                               entry(2, 0.2, 0.2, 0.2, sigma=0.05)]},
            "mean_corrupted_balanced_accuracy": 0.6125, "relative_drop": 0.1833}


def test_curves_start_at_the_clean_score_and_leave_noise_out():
    frame = view.curve_frame(fake_report())
    assert sorted(frame["corruption"].unique()) == ["bubble", "pixelate"]
    pixelate = frame[frame["corruption"] == "pixelate"]
    assert pixelate[["severity", "value"]].values.tolist() == [[0, 0.8], [1, 0.7], [2, 0.5]]


def test_recall_drop_per_corruption_and_class():
    mean = view.recall_drop(fake_report())
    assert list(mean.columns) == ["ig", "monocyte"]  # platelet is absent from the clean sample
    assert mean.loc["pixelate", "ig"] == pytest.approx(0.9 - 0.6)
    assert mean.loc["bubble", "monocyte"] == pytest.approx(0.6 - 0.4)
    worst = view.recall_drop(fake_report(), severity=2)
    assert worst.loc["bubble", "monocyte"] == pytest.approx(0.3) and worst.loc["bubble", "ig"] == pytest.approx(0.0)


def test_summary_names_the_worst_corruption():
    summary = view.summary_frame({"a": fake_report(), "b": fake_report(0.9)})
    # pixelate: mean of (0.8 + 0.6) / 2 and (0.4 + 0.6) / 2; bubble: of (0.9 + 0.5) / 2 and (0.9 + 0.3) / 2
    assert summary.loc["Worst corruption (mean balanced accuracy)", "a"] == "pixelate (60.0%)"
    assert summary.loc["Relative drop", "b"] == "18.3%" and summary.loc["Clean accuracy", "b"] == "90.0%"


def test_noise_figure_plots_sigma_with_clean_at_zero():
    figure = view.noise_figure({"model <b>x</b>": fake_report()})
    trace = figure.data[0]
    assert list(trace.x) == [0.0, 0.02, 0.05] and list(trace.y) == [0.8, 0.7, 0.2]
    assert trace.name == "model &lt;b&gt;x&lt;/b&gt;"  # model names are escaped for Plotly's HTML


class RecordingPredictor:
    """Stands in for the model: keeps every batch the benchmark scores."""

    def __init__(self, classes: list[str]) -> None:
        self.classes, self.card, self.batches = classes, {"name": "recorder"}, []

    def predict_proba(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        self.batches.append([np.array(image) for image in images])
        return np.full((len(images), len(self.classes)), 1 / len(self.classes))


def test_gallery_shows_the_image_exactly_as_the_benchmark_corrupted_it(tmp_path: Path):
    from bloodcell_core.data.datasets import load_dataset
    from bloodcell_core.robustness.benchmark import run_robustness
    from bloodcell_core.robustness.corruptions import CORRUPTIONS

    dataset = load_dataset(write_class_folders(tmp_path / "cells", ["lymphocyte", "monocyte"], per_class=2, size=48))
    recorder = RecordingPredictor(list(dataset.classes))
    run_robustness(dataset, recorder, seed=5, severities=(3,))
    # Batches: clean, one per corruption at severity 3 (CORRUPTIONS order), one per noise sigma.
    assert len(recorder.batches) == 1 + len(CORRUPTIONS) + len(GAUSSIAN_SIGMAS)
    scored = {"clean": recorder.batches[0], "bubble": recorder.batches[1 + list(CORRUPTIONS).index("bubble")],
              "noise": recorder.batches[-1]}
    for index in range(len(dataset)):  # every image is readable and of a known class: item i is position i
        image = dataset.load(index)
        assert view.corrupted_view(image, "bubble", 0, seed=5, index=index) is image
        assert np.array_equal(scored["clean"][index], image)
        bubbled = view.corrupted_view(image, "bubble", 3, seed=5, index=index)
        assert np.array_equal(bubbled, scored["bubble"][index]) and not np.array_equal(bubbled, image)
        noisy = view.corrupted_view(image, "gaussian_noise", len(GAUSSIAN_SIGMAS), seed=5, index=index)
        assert np.array_equal(noisy, scored["noise"][index])
    other_item = view.corrupted_view(dataset.load(0), "bubble", 3, seed=5, index=1)
    assert not np.array_equal(other_item, scored["bubble"][0])  # the item's index is part of its randomness
    assert view.gallery_levels("gaussian_noise") == len(GAUSSIAN_SIGMAS) and view.gallery_levels("pixelate") == 5
    assert view.level_text("gaussian_noise", 2) == f"sigma {GAUSSIAN_SIGMAS[1]}"
