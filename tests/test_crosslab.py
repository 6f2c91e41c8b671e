"""crosslab, seen_in_training and the held-out rule: a tiny model trained on one generated
"laboratory", scored on it and on a colour-shifted second one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bloodcell_core.cli import main
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.data.subsets import held_out_split, is_home_source, is_training_source, seen_in_training
from bloodcell_core.evaluation.crosslab import PER_CLASS_KEYS, SECTION_KEYS
from tests.helpers_images import write_class_folders
from tests.test_train_e2e import TINY

LAB_CLASSES = ["lymphocyte", "monocyte", "neutrophil"]
ERROR_KEYS = {"path", "true", "predicted", "confidence", "needs_review"}


def colour_shift(root: Path) -> Path:
    """Another laboratory's look: channels rotated, brighter, every PNG under ``root`` in place."""
    for path in root.rglob("*.png"):
        image = np.asarray(Image.open(path).convert("RGB")).astype(np.float32)
        shifted = np.clip(image[..., [2, 0, 1]] * 1.15 + 10, 0, 255).astype(np.uint8)
        Image.fromarray(shifted).save(path)
    return root


@pytest.fixture(scope="module")
def labs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """lab-a (the model's training set), lab-b (colour-shifted, one class the model lacks, one broken
    file), the model trained on lab-a, and a set with none of the model's classes."""
    from bloodcell_core.models.store import save_model
    from bloodcell_core.training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("labs")
    lab_a = write_class_folders(root / "lab-a", LAB_CLASSES, per_class=8)  # 6 per class crashes fit, see report
    lab_b = colour_shift(write_class_folders(root / "lab-b", [*LAB_CLASSES, "basophil"], per_class=3))
    (lab_b / "monocyte" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BLOODCELL_DATA_DIR", str(root / "appdata"))
        model, card = train(load_dataset(lab_a), TrainConfig(**TINY), command="pytest crosslab")
    model_dir = save_model(model, card, root / "model")
    platelets = write_class_folders(root / "platelets-only", ["platelet"], per_class=2)
    return {"a": lab_a, "b": lab_b, "model": model_dir, "platelets": platelets}


def card_of(model_dir: Path) -> dict:
    return json.loads((model_dir / "card.json").read_text())


def test_crosslab_writes_every_key_and_knows_which_lab_the_model_saw(labs, tmp_path, capsys):
    out = tmp_path / "crosslab.json"
    assert main(["crosslab", str(labs["a"]), str(labs["b"]), "--model", str(labs["model"]),
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    sections = report["datasets"]
    assert list(sections) == ["lab-a", "lab-b"] and report["classes"] == LAB_CLASSES
    for section in sections.values():
        assert set(SECTION_KEYS) <= set(section)
        matrix = section["confusion_matrix"]
        assert matrix["rows"] == section["classes_present"] and matrix["columns"] == LAB_CLASSES
        assert sum(map(sum, matrix["counts"])) == section["n_images"]
        assert set(section["per_class"]) == set(section["classes_present"])
        assert all(set(values) == set(PER_CLASS_KEYS) for values in section["per_class"].values())
        recalls = [section["per_class"][c]["recall"] for c in section["classes_present"]]
        assert section["balanced_accuracy"] == pytest.approx(np.mean(recalls))
        errors = section["errors"]
        assert all(set(e) == ERROR_KEYS and e["true"] != e["predicted"] for e in errors)
        assert len(errors) == round((1 - section["accuracy"]) * section["n_images"])
        confident = sum(not e["needs_review"] for e in errors) / section["n_images"]
        assert section["confident_error_rate"] == pytest.approx(confident)
    a, b = sections["lab-a"], sections["lab-b"]
    assert a["seen_in_training"] is True and b["seen_in_training"] is False
    assert a["n_images"] == 24 and a["classes_present"] == LAB_CLASSES
    assert b["n_images"] == 9 and b["unknown_class_images"]["n_images"] == 3  # basophils counted apart
    assert set(b["unknown_class_images"]["predicted_as"]) == {"basophil"}
    assert [Path(u["path"]).name for u in b["unreadable"]] == ["broken.png"]
    err = capsys.readouterr().err.splitlines()
    warnings = [line for line in err if line.startswith("warning:")]
    assert len(warnings) == 1 and "lab-a" in warnings[0] and "--held-out-only" in warnings[0]
    assert any(line.startswith("lab-a: 24 images") and "seen in training: yes" in line for line in err)
    assert any(line.startswith("lab-b: 9 images") and "seen in training: no" in line for line in err)


def test_held_out_only_restricts_to_the_cards_validation_items(labs, tmp_path, capsys):
    held_out = card_of(labs["model"])["validation_items"]
    assert 0 < len(held_out) < 24
    out = tmp_path / "held.json"
    assert main(["crosslab", str(labs["a"]), str(labs["b"]), "--model", str(labs["model"]), "--out", str(out),
                 "--held-out-only"]) == 0
    sections = json.loads(out.read_text())["datasets"]
    assert sections["lab-a"]["n_images"] == len(held_out) and sections["lab-a"]["held_out_only"] is True
    assert sections["lab-a"]["seen_in_training"] is True
    assert {Path(e["path"]).name for e in sections["lab-a"]["errors"]} <= {Path(p).name for p in held_out}
    assert sections["lab-b"]["n_images"] == 9  # never trained on: every image is held out
    assert "warning:" not in capsys.readouterr().err
    report = tmp_path / "evaluate.json"
    assert main(["evaluate", str(labs["a"]), "--model", str(labs["model"]), "--out", str(report),
                 "--held-out-only"]) == 0
    assert json.loads(report.read_text())["n_images"] == len(held_out)
    assert "warning:" not in capsys.readouterr().err
    assert main(["evaluate", str(labs["a"]), "--model", str(labs["model"]), "--out", str(report)]) == 0
    assert json.loads(report.read_text())["n_images"] == 24
    assert [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]


def test_robustness_held_out_only_and_overlap_warning(labs, tmp_path, capsys):
    held_out = card_of(labs["model"])["validation_items"]
    out = tmp_path / "robust.json"
    args = ["robustness", str(labs["a"]), "--model", str(labs["model"]), "--out", str(out), "--max-images", "0"]
    assert main([*args, "--held-out-only"]) == 0
    assert json.loads(out.read_text())["n_images"] == len(held_out)
    assert "warning:" not in capsys.readouterr().err
    # the shift bench scores the held-out images by itself, so it has nothing to warn about
    assert main(["shift-bench", *args[1:]]) == 0
    assert json.loads(out.read_text())["n_images"] == len(held_out)
    assert "warning:" not in capsys.readouterr().err


@pytest.mark.parametrize("which", ["platelets", "unreadable"])
def test_a_dataset_the_model_cannot_score_is_one_line_and_exit_2(labs, tmp_path, capsys, which):
    data = labs["platelets"]
    if which == "unreadable":
        data = tmp_path / "broken"
        (data / "monocyte").mkdir(parents=True)
        (data / "monocyte" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "x.json"
    assert main(["crosslab", str(labs["b"]), str(data), "--model", str(labs["model"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "Evaluating" not in line]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
    assert not out.exists()


# -- seen_in_training without a model --------------------------------------------------------------

@pytest.fixture
def lab(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "lab", ["lymphocyte", "monocyte"], per_class=2, size=32)


def test_seen_in_training_matches_fingerprints_of_every_source(lab, tmp_path):
    dataset = load_dataset(lab)
    fingerprint = dataset.fingerprint()
    assert seen_in_training({"data": {"source": "elsewhere", "fingerprint": fingerprint}}, dataset)
    multi = {"data": {"source": "several", "fingerprint": "0" * 16,
                      "sources": [{"source": "/other/lab", "fingerprint": "1" * 16, "n_images": 9},
                                  {"source": "/moved/lab", "fingerprint": fingerprint, "n_images": 4}]}}
    assert seen_in_training(multi, dataset) and is_training_source(multi, dataset)
    adapted = {"data": {"fingerprint": "0" * 16}, "adaptation": {"data": {"fingerprint": fingerprint}}}
    assert seen_in_training(adapted, dataset)
    other = load_dataset(write_class_folders(tmp_path / "other", ["lymphocyte"], per_class=3, size=32))
    assert not seen_in_training(multi, other) and not seen_in_training({}, other)


def test_the_home_laboratory_is_the_first_source_only(lab):
    dataset = load_dataset(lab)
    fingerprint = dataset.fingerprint()
    assert is_home_source({"data": {"source": "elsewhere", "fingerprint": fingerprint}}, dataset)
    second = {"data": {"source": "several", "fingerprint": "0" * 16,
                       "sources": [{"source": "/home/lab", "fingerprint": "1" * 16},
                                   {"source": "/second/lab", "fingerprint": fingerprint}]}}
    assert not is_home_source(second, dataset) and is_training_source(second, dataset)
    first = {"data": {**second["data"], "sources": list(reversed(second["data"]["sources"]))}}
    assert is_home_source(first, dataset)
    adapted = {"data": {"fingerprint": "0" * 16}, "adaptation": {"data": {"fingerprint": fingerprint}}}
    assert not is_home_source(adapted, dataset) and not is_home_source({}, dataset)


def test_seen_in_training_matches_source_paths_and_validation_items(lab, monkeypatch):
    dataset = load_dataset(lab)
    by_path = {"data": {"sources": [{"source": str(lab), "fingerprint": "stale"}]}}
    assert is_training_source(by_path, dataset)
    monkeypatch.chdir(lab.parent)
    assert is_training_source({"data": {"source": "lab"}}, dataset)  # a relative path, as cards record it
    # a card written on another machine: only class_folder/file still match
    listed = {"validation_items": ["/elsewhere/lab/monocyte/monocyte_1.png"]}
    assert seen_in_training(listed, dataset) and not is_training_source(listed, dataset)
    split = held_out_split(listed, dataset)
    assert split.seen and split.n_training == 3 and [dataset.items[i] for i in split.held_out] == [
        str(lab / "monocyte" / "monocyte_1.png")]
    assert not seen_in_training({"validation_items": ["/elsewhere/lab/monocyte/another.png"]}, dataset)
    # another laboratory whose files are named alike is not this one
    assert not seen_in_training({"validation_items": ["/data/other-lab/monocyte/monocyte_1.png"]}, dataset)
    unseen = held_out_split({}, dataset)
    assert not unseen.seen and unseen.n_training == 0 and len(unseen.held_out) == 4


# -- the shipped model and the shared laboratories ------------------------------------------------

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is missing (the real laboratories)")
def test_the_shipped_model_saw_exactly_the_sources_its_card_lists():
    from bloodcell_core.models.store import read_card, resolve_model_dir

    card = read_card(resolve_model_dir(None))
    sources = {Path(s["source"]).name: s for s in card.data.sources or [card.data.to_json()]}
    pbc = held_out_split(card, load_dataset(SHARED / "pbc-dev"))
    assert pbc.seen and len(pbc.held_out) == sources["pbc-dev"].get("n_validation", card.data.n_validation)
    for lab in ("lisc", "bionet"):
        assert seen_in_training(card, load_dataset(SHARED / lab)) == (lab in sources), lab
    assert not all(lab in sources for lab in ("lisc", "bionet")), "one laboratory must stay unseen"


def test_a_manifest_mixing_a_training_source_with_another_lab_keeps_the_other_lab(lab, tmp_path):
    other = write_class_folders(tmp_path / "other-lab", ["lymphocyte"], per_class=3, size=32)
    manifest = tmp_path / "mixed.csv"
    rows = [f"{path},{path.parent.name}" for folder in (lab, other) for path in sorted(folder.rglob("*.png"))]
    manifest.write_text("path,label\n" + "\n".join(rows) + "\n")
    dataset = load_dataset(manifest)
    card = {"data": {"source": "/somewhere/lab", "fingerprint": "0" * 16},
            "validation_items": ["/somewhere/lab/monocyte/monocyte_1.png"]}
    split = held_out_split(card, dataset)
    assert split.seen and split.n_training == 3  # lab's 4 images but the held-out one
    kept = {Path(dataset.items[i]).relative_to(tmp_path).as_posix() for i in split.held_out}
    assert kept == {"lab/monocyte/monocyte_1.png", *(f"other-lab/lymphocyte/lymphocyte_{i}.png" for i in range(3))}
