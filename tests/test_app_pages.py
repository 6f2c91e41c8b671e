"""The dashboard's shell and clinician pages, run through Streamlit's AppTest (real page code).

The model is a tiny fixture model that always predicts TINY_MODEL_CLASS, so nothing here depends
on a trained model's accuracy; the review store lives in tmp_path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from bloodcell_core.review.store import ReviewStore
from dashboard.datasets import OTHER_PATH
from tests.helpers_dashboard import (APP, TINY_MODEL_CLASS, open_app, png_bytes, recorded,
                                     sign_in, synthetic_cell, upload)


def image_captions(app: AppTest) -> list[str]:
    return [img.caption for element in app.get("image") for img in element.proto.imgs]


def button_with_prefix(app: AppTest, prefix: str):
    return next(b for b in app.button if b.key and b.key.startswith(prefix))


# -- shell and home ------------------------------------------------------------------------------

def test_home_describes_the_loaded_model_and_links_every_page(dashboard_env, tiny_model_dir):
    app = open_app()
    assert app.title[0].value == "Blood-cell review dashboard"
    card_table = app.dataframe[0].value
    assert "tiny-dashboard-test" in card_table["Value"].tolist()
    assert "synthetic test images (16 images)" in card_table["Value"].tolist()
    assert {m.label: m.value for m in app.metric}["Accuracy"] == "50.0%"
    links = {link.proto.label: link.proto.page for link in app.get("page_link")}
    assert links["Classify"] == "classify" and links["Model performance"] == "performance"
    pages_dir = Path(APP).parent / "pages"
    assert all((pages_dir / f"{page}.py").is_file() for page in links.values())  # only existing pages
    picker = app.sidebar.selectbox(key="app_model_picker")
    assert picker.value == str(tiny_model_dir.resolve())
    assert app.session_state["app_model_dir"] == str(tiny_model_dir.resolve())


def write_broken_model(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(b"not a keras zip file")
    (folder / "card.json").write_text(json.dumps({"name": "broken-model", "classes": ["a", "b"],
                                                  "input_size": 32, "crop_size": 32, "architecture": "x"}))
    return folder


def picker_page() -> None:
    import streamlit as st

    from dashboard import state

    st.text(f"chosen={state.model_picker()}")
    predictor = state.current_predictor()
    st.text(f"loaded={predictor.name if predictor is not None else None}")


def test_model_picker_survives_a_broken_model_file(dashboard_env, tiny_model_dir, tmp_path, monkeypatch):
    broken = write_broken_model(tmp_path / "more-models" / "broken")
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", os.pathsep.join([str(tiny_model_dir.parent), str(broken.parent)]))
    app = AppTest.from_function(picker_page, default_timeout=30).run()
    picker = app.sidebar.selectbox(key="app_model_picker")
    assert picker.options[0] == "tiny-dashboard-test (tiny)" and "broken-model (broken)" in picker.options
    assert app.text[-1].value == "loaded=tiny-dashboard-test"
    picker.select(str(broken.resolve())).run()
    assert not app.exception and app.session_state["app_model_dir"] == str(broken.resolve())
    errors = [e.value for e in app.error]
    assert len(errors) == 1 and "corrupt or unreadable model file" in errors[0] and "\n" not in errors[0]
    assert errors[0].startswith("The model can't be loaded: broken/model.keras: ")  # the folder name only
    assert str(broken.parent) not in errors[0] and str(broken.resolve().parent) not in errors[0]
    assert app.text[-1].value == "loaded=None"
    app.sidebar.selectbox(key="app_model_picker").select(str(tiny_model_dir.resolve())).run()
    assert not app.error and app.text[-1].value == "loaded=tiny-dashboard-test"


def test_pages_show_a_broken_model_as_one_line_and_keep_serving(dashboard_env, tmp_path):
    broken = write_broken_model(tmp_path / "more-models" / "broken")
    app = open_app()
    app.session_state["app_model_dir"] = str(broken)  # what the sidebar picker stores
    app.run()
    assert not app.exception and "corrupt or unreadable model file" in app.error[0].value
    assert all(str(tmp_path) not in e.value and str(tmp_path.resolve()) not in e.value for e in app.error)
    assert app.get("page_link")  # the rest of Home is still there
    app.switch_page("pages/classify.py").run()
    assert not app.exception and len(app.error) == 1 and "corrupt or unreadable" in app.error[0].value
    assert "broken/model.keras" in app.error[0].value and str(tmp_path.resolve()) not in app.error[0].value


# -- classify ------------------------------------------------------------------------------------

def test_classify_shows_label_probabilities_gradcam_and_crop_box(dashboard_env):
    app = upload(open_app(page="pages/classify.py"), [("cell.png", png_bytes(synthetic_cell(64)))])
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Predicted"] == TINY_MODEL_CLASS and metrics["Images analysed"] == "1"
    charts = app.get("plotly_chart")
    probability_chart = [c for c in charts if "Top probabilities" in c.proto.spec]
    assert len(probability_chart) == 1 and TINY_MODEL_CLASS in probability_chart[0].proto.spec
    captions = image_captions(app)
    assert f"Grad-CAM for {TINY_MODEL_CLASS}" in captions
    assert any("crop the model saw" in c for c in captions)
    assert "cell.png" in [t.value for t in app.text]
    assert not app.warning  # confident and localised: not flagged
    assert not any("views of each crop" in c.value for c in app.caption)  # one-pass model: no TTA note
    table = app.dataframe[0].value.set_index("class")
    assert table.loc[TINY_MODEL_CLASS, "count"] == 1 and table["count"].sum() == 1
    assert {b.label for b in app.get("download_button")} == {"Download predictions (CSV)",
                                                           "Download printable summary (HTML)"}


def test_classify_says_when_a_model_averages_test_time_views(dashboard_env, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    card = {**tiny_model_card("tta-model"), "inference": {"tta": ["identity", "rot180"], "tta_extra": ["rot90"],
                                                          "tta_extra_below": 0.7}}
    model_dir = save_model(build_tiny_model(), card, tmp_path / "tta-models" / "tta")
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    app = upload(open_app(page="pages/classify.py"), [("cell.png", png_bytes(synthetic_cell(64)))])
    assert not app.exception
    assert any("Prediction: averaged over 2 views (identity, rot180), plus rot90 where the top probability over "
               "those is below 0.70" in c.value for c in app.caption)
    assert f"Grad-CAM for {TINY_MODEL_CLASS}" in image_captions(app)


def test_classify_method_and_opacity_controls_change_the_explanation(dashboard_env):
    app = upload(open_app(page="pages/classify.py"), [("cell.png", png_bytes(synthetic_cell(64)))])
    first = app.get("image")[1].proto.imgs[0].url
    app.slider(key="classify_alpha").set_value(0.9).run()
    assert app.get("image")[1].proto.imgs[0].url != first
    app.selectbox(key="classify_method").select("Grad-CAM++").run()
    assert not app.exception and f"Grad-CAM++ for {TINY_MODEL_CLASS}" in image_captions(app)
    assert len(app.session_state["classify_explanations"]) == 2  # one heatmap per method, reused on reruns
    upload(app, [("other.png", png_bytes(synthetic_cell(64, seed=5)))])  # a new batch: old results are dropped
    assert len(app.session_state["classify_predictions"]) == 1
    assert len(app.session_state["classify_explanations"]) == 1


def test_bad_uploads_get_a_message_each_while_the_others_are_classified(dashboard_env):
    good = png_bytes(synthetic_cell(64))
    blank = png_bytes(np.full((64, 64, 3), (236, 200, 210), np.uint8))  # no stained cell: needs review
    app = upload(open_app(page="pages/classify.py"), [
        ("cell.png", good), ("empty.png", b""), ("half.png", good[: len(good) // 2]),
        ("text.png", b"hello, not an image"), ("dot.png", png_bytes(np.zeros((1, 1, 3), np.uint8))),
        ("blank.png", blank)])
    assert app.error[0].value.startswith("4 file(s) could not be analysed")
    texts = [t.value for t in app.text]
    for name, phrase in [("empty.png", "empty file"), ("half.png", "truncated"), ("text.png", "not an image"),
                         ("dot.png", "too small")]:
        assert any(t.startswith(name) and phrase in t for t in texts), (name, texts)
    metrics = {m.label: m.value for m in app.metric}
    assert (metrics["Images analysed"], metrics["Needs review"], metrics["Not readable"]) == ("2", "1", "4")
    assert any(c.value.startswith("Needs review: no stained cell found (1).") for c in app.caption)  # gallery
    table = app.dataframe[0].value.set_index("class")
    assert table.loc[TINY_MODEL_CLASS, "count"] == 1 and table.loc[TINY_MODEL_CLASS, "needs review"] == 1
    app.segmented_control(key="classify_view").set_value("Cards").run()  # the one-card-per-image view
    assert any("Needs review" in w.value and "no stained cell found" in w.value for w in app.warning)


def test_file_names_are_shown_as_plain_text_only(dashboard_env):
    hostile = "[click](javascript:alert(1)) <img src=x onerror=alert(1)> **bold**.png"
    app = upload(open_app(page="pages/classify.py"), [(hostile, png_bytes(synthetic_cell(64)))])
    assert hostile in [t.value for t in app.text]
    rendered = [m.value for m in app.markdown] + [c.value for c in app.caption] + image_captions(app)
    assert not any("javascript:" in value or "<img" in value for value in rendered)


def test_accept_and_correct_are_recorded_once_across_reruns(dashboard_env, reviewer_secrets):
    app = sign_in(open_app(reviewer_secrets, page="pages/classify.py"))
    app = upload(app, [("cell.png", png_bytes(synthetic_cell(64)))])
    button_with_prefix(app, "classify_accept_").click().run()
    assert any("Confirmed" in t.value and "recorded" in t.value for t in app.toast)
    app.run()
    app.run()
    button_with_prefix(app, "classify_accept_").click().run()  # the same decision again: nothing new
    assert any("already recorded" in t.value for t in app.toast)
    assert recorded(dashboard_env) == [("confirm-prediction", TINY_MODEL_CLASS, TINY_MODEL_CLASS, "alice")]
    correction = next(s for s in app.selectbox if s.key and s.key.startswith("classify_correct_"))
    correction.select("monocyte").run()
    button_with_prefix(app, "classify_save_").click().run()
    app.run()
    assert recorded(dashboard_env) == [("confirm-prediction", TINY_MODEL_CLASS, TINY_MODEL_CLASS, "alice"),
                                       ("correct-prediction", TINY_MODEL_CLASS, "monocyte", "alice")]
    assert any("corrected to monocyte by alice" in s.value.replace("\\", "") for s in app.success)
    table = app.dataframe[0].value.set_index("class")
    assert table.loc["monocyte", "count"] == 1 and table.loc[TINY_MODEL_CLASS, "count"] == 0
    with ReviewStore(f"sqlite:///{dashboard_env / 'review.sqlite'}") as store:
        row = store.history().iloc[0]
    assert row["path"] == "cell.png" and len(row["image_hash"]) == 64 and row["dataset"] == "classify-uploads"


def test_without_sign_in_nothing_can_be_recorded(dashboard_env, reviewer_secrets):
    secrets = {**reviewer_secrets, "access": {"read_only_open": True}}
    app = upload(open_app(secrets, page="pages/classify.py"), [("cell.png", png_bytes(synthetic_cell(64)))])
    assert not [b for b in app.button if b.key and b.key.startswith("classify_accept_")]
    assert any("Sign in" in i.value for i in app.info)
    assert recorded(dashboard_env) == []


def test_pages_stay_closed_to_anonymous_visitors_when_accounts_exist(dashboard_env, reviewer_secrets):
    app = open_app(reviewer_secrets, page="pages/classify.py")
    assert any("Sign in (sidebar) to view this page" in i.value for i in app.info)
    assert not app.get("file_uploader")


# -- performance ---------------------------------------------------------------------------------

def test_performance_evaluates_once_and_draws_every_view(dashboard_env, cell_dataset):
    app = open_app(page="pages/performance.py")
    assert app.selectbox(key="perf_dataset").value == str(cell_dataset.resolve())
    assert any("Press Evaluate" in i.value for i in app.info)
    app.button(key="perf_run").click().run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Accuracy"] == "50.0%"  # 3 lymphocytes right, 3 monocytes predicted lymphocyte
    assert metrics["Monocyte predicted as IG"] == "0.0%" and metrics["IG predicted as monocyte"] == "n/a"
    specs = [c.proto.spec for c in app.get("plotly_chart")]
    assert any("Confusion matrix" in s for s in specs) and any("ECE" in s for s in specs)
    assert any("Accuracy versus coverage" in s for s in specs)
    per_class = next(d.value for d in app.dataframe if "specificity" in d.value.columns)
    assert per_class.set_index("class").loc["monocyte", "recall"] == 0.0
    assert any("true **monocyte**, predicted **lymphocyte**" in c.value for c in app.caption)
    assert len(app.get("image")) == 3  # the three misclassified monocytes, with Grad-CAM
    app.toggle(key="perf_normalise").set_value(True).run()  # cached: no Evaluate button again
    assert not app.exception and not [b for b in app.button if b.key == "perf_run"]


def test_performance_compares_two_models_side_by_side(dashboard_env, tiny_model_dir, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    second = save_model(build_tiny_model(), tiny_model_card("second-model"), tmp_path / "others" / "second")
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", os.pathsep.join([str(tiny_model_dir.parent), str(second.parent)]))
    app = open_app(page="pages/performance.py")
    app.selectbox(key="perf_compare").select(str(second.resolve())).run()
    app.button(key="perf_run").click().run()
    assert not app.exception
    comparison = app.dataframe[0].value
    assert list(comparison.columns) == ["tiny-dashboard-test", "second-model"]
    assert comparison.loc["Accuracy"].tolist() == ["50.0%", "50.0%"]
    titles = [c.proto.spec for c in app.get("plotly_chart")]
    assert sum("second-model" in s for s in titles) == 1


def test_dataset_picker_refuses_paths_outside_the_data_roots(dashboard_env):
    app = open_app(page="pages/performance.py")
    app.selectbox(key="perf_dataset").select(OTHER_PATH).run()
    app.text_input(key="perf_dataset_typed").input("/etc").run()
    assert any("outside the configured data roots" in e.value for e in app.error)
    app.text_input(key="perf_dataset_typed").input("../../../etc").run()
    assert any("outside the configured data roots" in e.value for e in app.error)
    app.text_input(key="perf_dataset_typed").input("cells").run()
    assert not app.error and any("Press Evaluate" in i.value for i in app.info)


def test_adapt_page_shows_the_recorded_adaptation_curve_as_what_to_expect(dashboard_env, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    app = open_app(page="pages/adapt.py")
    assert not [e for e in app.expander if "What to expect" in e.label]  # the tiny model's card has no curve
    point = lambda parent, adapted: {"parent": {"mean": parent, "std": 0.0}, "adapted": {"mean": adapted, "std": 0.02}}
    curve = {"laboratories": {"lab-x": {"ks": [1, 10], "draws": 5, "seen_in_training": False,
                                        "curve": {"1": point(0.6, 0.62), "10": point(0.6, 0.88)}}}}
    model_dir = save_model(build_tiny_model(), {**tiny_model_card("curved"), "adaptation_curve": curve},
                           tmp_path / "curve-models" / "curved")
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    app = open_app(page="pages/adapt.py")
    assert [e for e in app.expander if "What to expect" in e.label]
    captions = [c.value for c in app.caption]
    assert any("60% unadapted, 88% after 10 cells per class" in c and "lab" in c for c in captions), captions
    assert app.get("plotly_chart")


def test_home_shows_how_the_model_was_made_from_its_card(dashboard_env, tmp_path, monkeypatch):
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    app = open_app()
    assert not [e for e in app.expander if "How this model was made" in e.label]  # the tiny card has none
    history = {"lineage": [{"note": "first run", "command": "python -m bloodcell_core train data --out runs/a"}],
               "ablation": {"columns": ["variant", "PBC held-out", "LISC"],
                            "rows": [["**shipped**: run a", "95.0%", "80.0% unseen"]]}}
    model_dir = save_model(build_tiny_model(), {**tiny_model_card("made"), "history": history},
                           tmp_path / "history-models" / "made")
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    app = open_app()
    assert [e for e in app.expander if "How this model was made" in e.label]
    assert "# first run\npython -m bloodcell_core train data --out runs/a" in [c.value for c in app.code]
    ablation = app.dataframe[1].value
    assert ablation.columns.tolist() == ["variant", "PBC held-out", "LISC"]
    assert ablation.iloc[0].tolist() == ["shipped: run a", "95.0%", "80.0% unseen"]  # emphasis removed

    broken = save_model(build_tiny_model(), {**tiny_model_card("broken-history"), "history": {"lineage": 3}},
                        tmp_path / "history-models" / "broken-history")
    monkeypatch.setenv("BLOODCELL_MODEL", str(broken))
    app = open_app()
    assert not app.exception
    assert any("'lineage' must be a list" in w.value for w in app.warning)  # one line; Home keeps serving
