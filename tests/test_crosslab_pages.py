"""The held-out rule on Model performance and Robustness, and Robustness's "Other laboratories"
section, under AppTest with a tiny fixture model whose card lists a generated dataset as a source."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bloodcell_core.data.datasets import load_dataset
from tests.helpers_dashboard import open_app, write_cell_dataset
from tests.helpers_images import write_class_folders

HELD_OUT_CAPTION = "held-out: 2 images the model never trained on"


@pytest.fixture
def labs_env(dashboard_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A data root with ``trained`` (a source of the model: 4 training + 2 held-out images) and
    ``otherlab`` (never seen); the tiny model's card says so, as a multi-source card would."""
    from bloodcell_core.models.store import save_model
    from tests.helpers_dashboard import build_tiny_model, tiny_model_card

    root = tmp_path / "labs-root"
    trained, other = root / "trained", root / "otherlab"
    write_cell_dataset(trained)
    write_class_folders(other, ["lymphocyte", "monocyte"], per_class=3, size=48)  # other images, same names
    card = tiny_model_card("held-out-test")
    card["data"] = {"source": "several", "sources": [
        {"source": "/nowhere/else", "fingerprint": "0" * 16, "n_images": 3},
        {"source": str(trained), "fingerprint": load_dataset(trained).fingerprint(), "n_images": 6}]}
    card["validation_items"] = [str(trained / "lymphocyte" / "lymphocyte_0.png"),
                                str(trained / "monocyte" / "monocyte_0.png")]
    model_dir = save_model(build_tiny_model(), card, tmp_path / "held-models" / "held")
    monkeypatch.setenv("BLOODCELL_MODEL", str(model_dir))
    monkeypatch.setenv("BLOODCELL_MODELS_DIR", str(model_dir.parent))
    monkeypatch.setenv("BLOODCELL_DATA_ROOTS", str(root))
    return {"trained": trained, "other": other}


def captions(app: AppTest) -> list[str]:
    return [c.value for c in app.caption]


def test_performance_scores_only_held_out_images_of_a_training_source(labs_env):
    app = open_app(page="pages/performance.py")
    app.selectbox(key="perf_dataset").select(str(labs_env["trained"])).run()
    assert HELD_OUT_CAPTION in captions(app) and app.checkbox(key="perf_training_images").value is False
    app.button(key="perf_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("on 2 images" in s.value for s in app.subheader)
    app.checkbox(key="perf_training_images").check().run()  # the explicit, labelled choice
    assert any("not a fair test" in w.value for w in app.warning)
    app.button(key="perf_run").click().run()
    assert any("on 6 images" in s.value for s in app.subheader)
    app.selectbox(key="perf_dataset").select(str(labs_env["other"])).run()  # never trained on: no choice
    assert not [c for c in app.checkbox if c.key == "perf_training_images"]
    assert HELD_OUT_CAPTION not in captions(app)


def test_robustness_defaults_to_held_out_and_shows_other_laboratories(labs_env):
    app = open_app(page="pages/robustness.py")
    app.selectbox(key="rob_dataset").select(str(labs_env["trained"])).run()
    assert HELD_OUT_CAPTION in captions(app) and app.checkbox(key="rob_training_images").value is False
    assert any("benchmarking 2" in c for c in captions(app))
    labs = app.multiselect(key="rob_labs")
    # the home source (the card's first, elsewhere) is left out; a further training source is listed after
    # the unseen one but not chosen at first
    assert labs.options == ["labs-root/otherlab", "labs-root/trained"] and labs.value == ["labs-root/otherlab"]
    app.button(key="rob_labs_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    table = next(d.value for d in app.dataframe if "balanced accuracy" in d.value.columns)
    row = table.iloc[0]
    assert row["dataset"] == "labs-root/otherlab" and row["images"] == 6 and row["seen in training"] == "no"
    assert row["accuracy"] == pytest.approx(0.5) and row["classes present"] == "lymphocyte, monocyte"
    specs = [chart.proto.spec for chart in app.get("plotly_chart")]
    assert any("Confusion matrix: labs-root\\u002fotherlab" in s for s in specs)  # Plotly escapes "/"
    tiles = [img.caption for image in app.get("image") for img in image.proto.imgs]
    assert len(tiles) == 3 and all(t.startswith("true monocyte, predicted lymphocyte") for t in tiles)
    app.toggle(key="rob_labs_normalise").set_value(True).run()  # cached: no button, no recomputation
    assert not app.exception and not [b for b in app.button if b.key == "rob_labs_run"]


def test_robustness_scores_a_trained_on_laboratory_on_its_held_out_images_only(labs_env):
    app = open_app(page="pages/robustness.py")
    app.multiselect(key="rob_labs").set_value(["labs-root/otherlab", "labs-root/trained"]).run()
    app.button(key="rob_labs_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    table = next(d.value for d in app.dataframe if "balanced accuracy" in d.value.columns).set_index("dataset")
    assert table.loc["labs-root/otherlab", "seen in training"] == "no"
    assert table.loc["labs-root/trained", "seen in training"] == "yes, held-out images only"
    assert table.loc["labs-root/trained", "images"] == 2  # its 2 validation images, not the 4 trained on
