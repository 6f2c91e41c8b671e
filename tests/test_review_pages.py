"""The data-review pages (Duplicates, Outliers, Label issues, Review log) through Streamlit's AppTest.

The dataset is generated in tmp_path (3 classes of synthetic cells, a byte copy filed under another
class, a JPEG re-encode, a mislabelled cell and a broken file) and is the only one under the data
root; the model is the tiny fixture model; the review store lives in tmp_path.
"""
from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from bloodcell_core.review.store import ReviewStore
from tests.helpers_dashboard import open_app, review_history, sign_in
from tests.helpers_images import synthetic_cell, write_class_folders

HOSTILE = "[x](javascript:alert(1)) <img src=x onerror=alert(1)> **b**.png"
CLASSES = ["lymphocyte", "monocyte", "neutrophil"]


@pytest.fixture
def review_data(dashboard_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The generated dataset, alone under its data root; returns the dataset folder."""
    root = write_class_folders(tmp_path / "review-root" / "cells", CLASSES, per_class=6, size=64)
    shutil.copy(root / "lymphocyte" / "lymphocyte_0.png", root / "monocyte" / "copy.png")  # conflicting labels
    Image.open(root / "neutrophil" / "neutrophil_1.png").save(root / "neutrophil" / HOSTILE.replace(".png", ".jpg"),
                                                             quality=95)  # near duplicate, hostile name
    neutrophil_like = synthetic_cell(64, radius=64 * 0.16, seed=2099, nucleus_colour=(60, 40, 110))
    Image.fromarray(neutrophil_like).save(root / "lymphocyte" / "misfiled.png")  # a likely label issue
    (root / "monocyte" / "broken.png").write_bytes(b"not an image")
    monkeypatch.setenv("BLOODCELL_DATA_ROOTS", str(root.parent))
    return root


def open_page(page: str, secrets: dict | None = None) -> AppTest:
    return open_app(secrets, f"pages/{page}.py")


def buttons(app: AppTest, prefix: str) -> list:
    return [b for b in app.button if b.key and b.key.startswith(prefix)]


def plain(markdown: str) -> str:
    """Markdown with the backslash escapes of ``state.md_escape`` removed."""
    return markdown.replace("\\", "")


def rendered_markup(app: AppTest) -> list[str]:
    return ([m.value for m in app.markdown] + [c.value for c in app.caption] + [w.value for w in app.warning]
            + [s.value for s in app.success] + [i.value for i in app.info])


# -- duplicates --------------------------------------------------------------------------------

def test_duplicates_shows_groups_side_by_side_conflicts_first(review_data):
    app = open_page("duplicates")
    headings = [m.value for m in app.markdown if m.value.startswith("**Group")]
    assert len(headings) == 2
    assert "Exact duplicates · identical bytes" in headings[0] and "labels conflict" in headings[0]
    assert "Near duplicates · perceptual-hash distance up to" in headings[1] and "conflict" not in headings[1]
    assert [t.value for t in app.text][:2] == ["lymphocyte_0.png", "copy.png"]
    captions = [c.value for c in app.caption]
    assert "Label: **lymphocyte**" in captions and "Label: **monocyte**" in captions
    assert sum("byte-identical" in c for c in captions) == 1  # the copy: one decision covers both files
    assert len(app.get("image")) == 4
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Groups with conflicting labels"] == "1" and metrics["Exact-duplicate groups"] == "1"
    assert app.get("progress")[0].proto.text == "0 of 2 groups reviewed"
    unreadable = next(d.value for d in app.dataframe if "reason" in d.value.columns)
    assert unreadable["path"].str.endswith("broken.png").tolist() == [True]
    assert not buttons(app, "dup_keep_")  # nobody signed in: no actions
    assert any("sign-in" in i.value.lower() for i in app.info)


def test_file_names_are_plain_text_never_markup(review_data):
    app = open_page("duplicates")
    assert HOSTILE.replace(".png", ".jpg") in [t.value for t in app.text]
    assert not any("javascript:" in value or "<img" in value for value in rendered_markup(app))


def test_a_duplicate_decision_is_recorded_once_and_the_group_hidden(review_data, dashboard_env, reviewer_secrets):
    app = sign_in(open_page("duplicates", reviewer_secrets))
    near_key = buttons(app, "dup_keep_")[-1].key.rsplit("_", 2)[1]  # the second group: the near pair
    app.text_input(key=f"dup_note_{near_key}").input("re-encoded copy")
    app.button(key=f"dup_keep_{near_key}_0").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert any("Keep one: 2 decision(s) recorded (1 keep, 1 drop)" in plain(t.value) for t in app.toast)
    app.run()
    app.run()
    rows = review_history(dashboard_env)
    assert sorted(rows["action"]) == ["drop", "keep"] and set(rows["reviewer"]) == {"alice"}
    kept = rows[rows["action"] == "keep"].iloc[0]
    assert kept["path"] == str(review_data / "neutrophil" / HOSTILE.replace(".png", ".jpg"))  # sorts first
    assert kept["dataset"] == "review-root/cells"
    assert kept["old_label"] == "neutrophil" and kept["note"].endswith("re-encoded copy")
    assert len(kept["image_hash"]) == 64
    # the decided group is hidden; progress moved on
    assert app.get("progress")[0].proto.text == "1 of 2 groups reviewed"
    assert len([m for m in app.markdown if m.value.startswith("**Group")]) == 1
    assert not app.get("button") or not [b for b in buttons(app, f"dup_keep_{near_key}")]
    # shown again on request, with its decision; clicking the same choice again writes nothing
    app.toggle(key="dup_show_decided").set_value(True).run()
    assert any("decided" in m.value for m in app.markdown if m.value.startswith("**Group 2"))
    assert any("keep by alice" in plain(c.value) for c in app.caption)
    app.button(key=f"dup_keep_{near_key}_0").click().run()
    assert any("already recorded" in plain(t.value) for t in app.toast)
    assert len(review_history(dashboard_env)) == 2
    # the byte-identical pair has one "Keep one" for the group (the copies share their content hash)
    copies_key = next(b.key for b in buttons(app, "dup_keepall_")).rsplit("_", 1)[1]
    assert not buttons(app, f"dup_keep_{copies_key}_")
    app.button(key=f"dup_keepall_{copies_key}").click().run()
    assert app.get("progress")[0].proto.text == "2 of 2 groups reviewed"
    assert review_history(dashboard_env)["action"].tolist()[0] == "keep-one-copy" and len(review_history(dashboard_env)) == 3


def test_duplicates_finds_leakage_into_a_second_dataset_and_drops_it(review_data, dashboard_env, reviewer_secrets):
    """As ``audit --against``: an image of this dataset also in the test set is shown next to its copy."""
    test_set = review_data.parent / "test"
    (test_set / "lymphocyte").mkdir(parents=True)
    (test_set / "monocyte").mkdir()
    shutil.copy(review_data / "lymphocyte" / "lymphocyte_1.png", test_set / "lymphocyte" / "leaked.png")
    Image.fromarray(synthetic_cell(64, seed=5555)).save(test_set / "monocyte" / "unique.png")
    app = sign_in(open_page("duplicates", reviewer_secrets))
    app.toggle(key="dup_leak_on").set_value(True).run()
    assert any("Pick a different dataset" in i.value for i in app.info)  # the default is the reviewed one
    app.selectbox(key="dup_against").select(str(test_set.resolve())).run()
    assert not app.exception, [e.value for e in app.exception]
    assert "Leakage into review-root/test" in [plain(h.value) for h in app.subheader]
    assert any("1 image(s) of this dataset also occur in review-root/test" in plain(w.value) for w in app.warning)
    assert {"lymphocyte_1.png", "leaked.png"} <= {t.value for t in app.text}
    buttons(app, "dup_leakdrop_")[0].click().run()
    rows = review_history(dashboard_env)
    assert rows["action"].tolist() == ["drop"] and rows["path"].iloc[0].endswith("lymphocyte_1.png")
    assert rows["note"].iloc[0] == "leaked: also in review-root/test as leaked.png (identical bytes)"
    assert "1 of 1 leaked images reviewed" in [p.proto.text for p in app.get("progress")]


def test_a_busy_review_database_is_one_line_on_the_page(review_data, dashboard_env, reviewer_secrets, monkeypatch):
    """A write refused because the store is busy (pool exhausted, lock held) says so in one line; no exception."""
    from bloodcell_core.review.store import BUSY_MESSAGE, ReviewStoreBusy

    app = sign_in(open_page("duplicates", reviewer_secrets))
    key = buttons(app, "dup_keep_")[-1].key

    def busy(self, decision):  # noqa: ANN001, ARG001
        raise ReviewStoreBusy("could not record the decision")

    monkeypatch.setattr(ReviewStore, "record", busy)
    app.button(key=key).click().run()
    assert not app.exception, [e.value for e in app.exception]
    shown = [plain(e.value) for e in app.error]
    assert len(shown) == 1 and shown[0].startswith(BUSY_MESSAGE) and "\n" not in shown[0]
    assert review_history(dashboard_env).empty


# -- outliers and label issues -----------------------------------------------------------------

def test_outliers_gallery_records_a_drop_and_draws_the_feature_map(review_data, dashboard_env, reviewer_secrets,
                                                                   monkeypatch):
    from bloodcell_core.inference.predictor import Predictor

    embedded, embed_dataset = [], Predictor.embed_dataset
    monkeypatch.setattr(Predictor, "embed_dataset",
                        lambda self, *args, **kwargs: embedded.append(1) or embed_dataset(self, *args, **kwargs))
    app = sign_in(open_page("outliers", reviewer_secrets))
    assert any("Press the button" in i.value for i in app.info)
    app.button(key="outl_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.get("progress")[0].proto.text == "0 of 1 outliers reviewed"  # 1% of 20 readable images
    assert any(m.value.startswith("**#1** · score") for m in app.markdown)
    buttons(app, "outl_drop_")[0].click().run()
    app.run()
    rows = review_history(dashboard_env)
    assert rows["action"].tolist() == ["drop"] and rows["note"][0].startswith("outlier #1")
    assert app.get("progress")[0].proto.text == "1 of 1 outliers reviewed"
    app.get("button_group")[0].set_value("Feature map").run()
    assert not app.exception, [e.value for e in app.exception]
    spec = app.get("plotly_chart")[0].proto.spec
    assert "PCA" in spec and '"name":"outlier"' in spec and "&lt;img src=x" in spec and "<img" not in spec
    assert len(embedded) == 1  # the scores and the map share one embedding of the sample


def test_label_issues_show_given_suggested_and_probabilities(review_data, dashboard_env, reviewer_secrets):
    app = sign_in(open_page("label_issues", reviewer_secrets))
    app.button(key="labiss_run").click().run()
    assert not app.exception, [e.value for e in app.exception]
    assert "misfiled.png" in [t.value for t in app.text]
    assert any(c.value.startswith("Given **lymphocyte** → suggested **neutrophil**") for c in app.caption)
    assert any("Model probabilities" in chart.proto.spec for chart in app.get("plotly_chart"))
    quick = next(b for b in buttons(app, "labiss_suggested_") if b.label == "Relabel to neutrophil")
    quick.click().run()
    app.run()
    rows = review_history(dashboard_env)
    misfiled = rows[rows["path"].str.endswith("misfiled.png")]
    assert misfiled[["action", "old_label", "new_label"]].values.tolist() == [["relabel", "lymphocyte", "neutrophil"]]


# -- review log ----------------------------------------------------------------------------------

def test_review_log_filters_every_decision_and_downloads_csv(review_data, dashboard_env):
    app = open_page("review_log")
    assert any("No decisions recorded yet" in i.value for i in app.info)
    with ReviewStore(f"sqlite:///{dashboard_env / 'review.sqlite'}") as store:
        from bloodcell_core.review.store import Decision

        for reviewer, action, name in [("alice", "drop", "a.png"), ("bob", "keep", HOSTILE)]:
            store.record(Decision("f" * 63 + reviewer[0], "review-root/cells", name, action, "monocyte", None,
                                  reviewer, request_id=f"{reviewer}-{action}"))
    app.run()
    table = app.dataframe[0].value
    assert table["reviewer"].tolist() == ["bob", "alice"] and HOSTILE in table["path"].tolist()
    assert {m.label: m.value for m in app.metric}["Decisions"] == "2"
    app.selectbox(key="log_reviewer").select("alice").run()
    assert app.dataframe[0].value["action"].tolist() == ["drop"]
    app.selectbox(key="log_reviewer").select("(all)").run()
    app.selectbox(key="log_action").select("keep").run()
    assert app.dataframe[0].value["reviewer"].tolist() == ["bob"]
    download = app.get("download_button")[0]
    assert download.proto.label == "Download CSV"
    app.selectbox(key="log_dataset").select("review-root/cells").run()
    assert len(app.dataframe[0].value) == 1
    app.date_input(key="log_since").set_value(date.today() + timedelta(days=2)).run()
    assert not app.dataframe and any("No decision matches" in i.value for i in app.info)


@pytest.mark.parametrize("page", ["duplicates", "outliers", "label_issues", "review_log"])
def test_every_review_page_renders_read_only(review_data, page):
    app = open_page(page)
    assert app.title[0].value.replace(" ", "_").lower() == page
    assert not app.error
