"""The data audit on small generated smears: duplicates, conflicts, outliers, label issues, leakage, CLI."""
from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from bloodcell_core.audit import AuditSettings, cached_audit, run_audit
from bloodcell_core.audit.hashing import find_near_duplicates
from bloodcell_core.audit.runner import audit_cache_path, load_predictor
from bloodcell_core.cli import main
from bloodcell_core.data.datasets import load_dataset
from bloodcell_core.data.duplicates import duplicate_groups, group_pairs, hamming_cross_pairs, hamming_pairs, phash64
from bloodcell_core.errors import BloodcellError
from bloodcell_core.inference.predictor import Predictor

REPORT_KEYS = {"n_images", "source", "dataset_fingerprint", "model", "settings", "skipped", "class_counts",
               "class_balance", "conflicting_label_groups", "exact_duplicates", "near_duplicates",
               "outliers", "label_issues", "leakage", "unreadable"}


def smear(seed: int, size: int = 96) -> np.ndarray:
    """A synthetic blood smear: pinkish background, pale red-cell discs, one purple nucleus blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.ones((size, size, 3)) * np.array([236.0, 214.0, 218.0])
    for _ in range(rng.integers(4, 9)):
        cy, cx, radius = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(size / 12, size / 7)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        image[disc] = [224.0, 168.0, 176.0]
    cy, cx = rng.uniform(size / 4, 3 * size / 4, 2)
    ry, rx = rng.uniform(size / 10, size / 5, 2)
    image[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1] = [112.0, 58.0, 150.0]
    image += rng.normal(0, 4, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, quality: int = 95) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def with_comment(jpeg: bytes, text: bytes = b"re-saved by another tool") -> bytes:
    """Same JPEG data (same pixels) with a COM segment: different bytes, identical pixels."""
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:2] + segment + jpeg[2:]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def smear_set(tmp_path: Path) -> dict[str, Path]:
    """Three classes of distinct smears plus every kind of problem the audit looks for."""
    root = tmp_path / "data"
    paths: dict[str, Path] = {}
    for number, cls in enumerate(("eosinophil", "neutrophil", "lymphocyte")):
        for k in range(4):
            seed = 10 * number + k
            paths[f"{cls}{k}"] = write(root / cls / f"{cls}_{k}.jpg", jpeg_bytes(smear(seed)))
    shared = jpeg_bytes(smear(100))
    paths["conflict_a"] = write(root / "eosinophil" / "EO_shared.jpg", shared)
    paths["conflict_b"] = write(root / "neutrophil" / "NE_shared.jpg", shared)
    same_pixels = jpeg_bytes(smear(101))
    paths["pixels_a"] = write(root / "lymphocyte" / "LY_original.jpg", same_pixels)
    paths["pixels_b"] = write(root / "lymphocyte" / "LY_with_comment.jpg", with_comment(same_pixels))
    paths["pixels_c"] = write(root / "lymphocyte" / "LY_other_comment.jpg", with_comment(same_pixels, b"v2"))
    brighter = np.asarray(ImageEnhance.Brightness(Image.fromarray(smear(102))).enhance(1.04))
    paths["near_a"] = write(root / "neutrophil" / "NE_near.jpg", jpeg_bytes(smear(102)))
    paths["near_b"] = write(root / "neutrophil" / "NE_near_reencoded.jpg", jpeg_bytes(brighter, quality=50))
    gray = io.BytesIO()
    Image.fromarray(smear(103)).convert("L").save(gray, "JPEG")
    paths["gray"] = write(root / "lymphocyte" / "LY_gray.jpg", gray.getvalue())
    png = io.BytesIO()
    Image.fromarray(smear(104)).save(png, "PNG")
    paths["png"] = write(root / "eosinophil" / "EO_png.png", png.getvalue())
    paths["corrupt"] = write(root / "eosinophil" / "EO_truncated.jpg", jpeg_bytes(smear(105))[:300])
    return {"root": root, **paths}


def test_audit_finds_conflicts_duplicates_and_goes_on_past_bad_files(smear_set: dict[str, Path]) -> None:
    dataset = load_dataset(smear_set["root"])
    report = run_audit(dataset, no_model_reason="no model in this test")

    assert report["n_images"] == len(dataset) == 22
    conflict = report["conflicting_label_groups"][0]
    assert conflict["kind"] == "exact"
    assert set(conflict["paths"]) == {str(smear_set["conflict_a"]), str(smear_set["conflict_b"])}
    assert sorted(conflict["labels"]) == ["eosinophil", "neutrophil"]
    assert len(report["conflicting_label_groups"]) == 1

    exact = {frozenset(g["paths"]): g["match"] for g in report["exact_duplicates"]}
    assert exact == {frozenset({str(smear_set["conflict_a"]), str(smear_set["conflict_b"])}): "bytes",
                     frozenset({str(smear_set[f"pixels_{k}"]) for k in "abc"}): "pixels"}
    assert report["exact_duplicates"][0]["paths"] == conflict["paths"]  # conflicts first, though smaller

    assert [set(g["paths"]) for g in report["near_duplicates"]] == [
        {str(smear_set["near_a"]), str(smear_set["near_b"])}]
    assert 0 < report["near_duplicates"][0]["max_distance"] <= AuditSettings().hamming

    unreadable = {entry["path"]: entry["reason"] for entry in report["unreadable"]}
    assert list(unreadable) == [str(smear_set["corrupt"])]
    assert "corrupt or truncated" in unreadable[str(smear_set["corrupt"])]
    assert report["class_counts"] == {"eosinophil": 7, "lymphocyte": 8, "neutrophil": 7}
    assert report["class_balance"]["largest"] == {"class": "lymphocyte", "count": 8}
    assert report["skipped"] == {"outliers": "no model in this test", "label_issues": "no model in this test",
                                 "leakage": "no second dataset given to check against"}
    json.dumps(report)  # JSON-ready


def test_near_duplicate_threshold_is_configurable(smear_set: dict[str, Path]) -> None:
    dataset = load_dataset(smear_set["root"])
    assert run_audit(dataset, settings=AuditSettings(hamming=0))["near_duplicates"] == []
    with pytest.raises(BloodcellError, match="0-64"):
        AuditSettings(hamming=65)


def test_packed_phash_is_imagehash_phash() -> None:
    image = Image.fromarray(smear(7)).convert("L")
    assert int(phash64(image)) == int(str(imagehash.phash(image)), 16)
    rgb = smear(7)  # the training split hashes decoded RGB arrays: imagehash converts them to grayscale
    assert int(phash64(rgb)) == int(str(imagehash.phash(Image.fromarray(rgb))), 16)


def test_training_split_groups_what_the_audit_calls_near_duplicates() -> None:
    far = ((1 << 20) - 1) << 40  # 20 bits set
    codes = np.array([0, 0b1111, 0b11111 << 10, far, far | 0b11, (1 << 60) - 1], dtype=np.uint64)
    groups = duplicate_groups(codes)  # default threshold: the audit's 4 bits
    assert groups[0] == groups[1] and groups[3] == groups[4]  # 4 bits and 2 bits apart
    assert len({groups[0], groups[2], groups[3], groups[5]}) == 4  # 5 bits or more from everything else
    assert AuditSettings().hamming == 4


def brute_force_pairs(codes: np.ndarray, threshold: int) -> set[tuple[int, int, int]]:
    found = set()
    for i in range(len(codes)):
        for j in range(i + 1, len(codes)):
            distance = bin(int(codes[i]) ^ int(codes[j])).count("1")
            if distance <= threshold:
                found.add((i, j, distance))
    return found


def random_codes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 64-bit codes with planted chains of close codes (so every threshold has pairs)."""
    codes = rng.integers(0, 2 ** 63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    for target in rng.choice(n, n // 4, replace=False):
        source = codes[rng.integers(n)]
        flips = rng.choice(64, rng.integers(0, 9), replace=False)
        codes[target] = source ^ np.uint64(sum(1 << int(f) for f in flips))
    return codes


@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_vectorised_near_search_equals_brute_force(threshold: int) -> None:
    codes = random_codes(np.random.default_rng(threshold), 300)
    pairs = hamming_pairs(codes, threshold, block_rows=37)  # blocks that don't divide n
    found = set(zip(pairs.first.tolist(), pairs.second.tolist(), pairs.distance.tolist()))
    assert found == brute_force_pairs(codes, threshold)
    assert found  # the planted chains give pairs at every threshold tested


def test_near_groups_are_connected_components_of_pairs() -> None:
    codes = random_codes(np.random.default_rng(5), 200)
    near = find_near_duplicates(codes, 6)
    parent = list(range(len(codes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j, _ in brute_force_pairs(codes, 6):
        parent[root(i)] = root(j)
    expected: dict[int, set[int]] = {}
    for i in range(len(codes)):
        expected.setdefault(root(i), set()).add(i)
    assert {frozenset(g.tolist()) for g in near.groups} == {frozenset(s) for s in expected.values() if len(s) > 1}
    assert group_pairs(4, np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == []


def test_cross_search_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    codes = random_codes(rng, 240)
    a, b = codes[:100], codes[100:]
    pairs = hamming_cross_pairs(a, b, 8, block_rows=33)
    found = set(zip(pairs.first.tolist(), pairs.second.tolist(), pairs.distance.tolist()))
    expected = {(i, j, bin(int(x) ^ int(y)).count("1")) for i, x in enumerate(a) for j, y in enumerate(b)
                if bin(int(x) ^ int(y)).count("1") <= 8}
    assert found == expected and found


class FakePredictor:
    """Stands in for Predictor: ``embed`` returns designed features looked up by image content."""

    def __init__(self, features_by_image: dict[bytes, np.ndarray]) -> None:
        self.features_by_image = features_by_image
        self.name = "fake"
        self.card = {"name": "fake", "classes": ["a", "b", "c"]}

    @staticmethod
    def key(image: np.ndarray) -> bytes:
        return hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()

    embed_dataset = Predictor.embed_dataset  # the real chunked loop over a dataset, around the fake embed

    def embed(self, images: list[np.ndarray], batch_size: int = 64, progress=None) -> np.ndarray:
        return np.stack([self.features_by_image[self.key(image)] for image in images])


@pytest.fixture
def embedded_set(tmp_path: Path) -> tuple[Path, FakePredictor, dict[str, Path]]:
    """3 classes x 15 PNG smears whose features cluster by class, one far-off image, one flipped label."""
    rng = np.random.default_rng(0)
    root = tmp_path / "embedded"
    classes = ["basophil", "monocyte", "platelet"]
    centres = np.eye(8)[:3] * 4.0
    features: dict[bytes, np.ndarray] = {}
    special: dict[str, Path] = {}
    for number, cls in enumerate(classes):
        for k in range(15):
            pixels = smear(1000 + 100 * number + k, size=32)
            feature = centres[number] + rng.normal(0, 0.3, 8)
            name = f"{cls}_{k}.png"
            if (cls, k) == ("platelet", 0):  # a monocyte filed as a platelet
                feature = centres[1] + rng.normal(0, 0.3, 8)
                name = "flipped.png"
            if (cls, k) == ("basophil", 3):  # unlike anything else
                feature = np.array([0, 0, 0, 0, 0, 0, 6.0, 5.0])
                name = "far_off.png"
            path = root / cls / name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(path)
            features[FakePredictor.key(pixels)] = feature
            special[name] = path
    return root, FakePredictor(features), special


@pytest.mark.parametrize("method", ["knn", "isolation_forest"])
def test_outliers_rank_the_far_off_image_first(embedded_set, method: str) -> None:
    root, predictor, special = embedded_set
    report = run_audit(load_dataset(root), predictor, settings=AuditSettings(outlier_method=method))
    assert report["outliers"][0]["path"] == str(special["far_off.png"])
    assert len(report["outliers"]) == 1  # 1% of 45 images, at least one
    assert report["model"] == "fake"


def test_label_issues_find_the_flipped_label(embedded_set) -> None:
    root, predictor, special = embedded_set
    report = run_audit(load_dataset(root), predictor)
    issues = {issue["path"]: issue for issue in report["label_issues"]}
    flipped = issues[str(special["flipped.png"])]
    assert flipped["given_label"] == "platelet" and flipped["suggested_label"] == "monocyte"
    assert flipped["score"] < 0.5
    assert report["label_issues"][0]["path"] == str(special["flipped.png"])  # lowest self-confidence first
    assert len(report["label_issues"]) <= 3
    assert "outliers" not in report["skipped"] and "label_issues" not in report["skipped"]


def test_label_issues_skipped_with_reason_when_classes_are_too_small(tmp_path: Path) -> None:
    root = tmp_path / "tiny"
    features = {}
    for number, cls in enumerate(("basophil", "monocyte")):
        pixels = smear(number, size=32)
        (root / cls).mkdir(parents=True)
        Image.fromarray(pixels).save(root / cls / "only.png")
        features[FakePredictor.key(pixels)] = np.eye(4)[number]
    (root / "monocyte" / "second.png").write_bytes((root / "monocyte" / "only.png").read_bytes())
    report = run_audit(load_dataset(root), FakePredictor(features))
    assert "at least 2" in report["skipped"]["label_issues"]
    assert len(report["outliers"]) == 1


def test_unloadable_model_skips_model_checks_with_reason(smear_set: dict[str, Path], tmp_path: Path) -> None:
    predictor, reason = load_predictor(tmp_path / "no-such-model")
    assert predictor is None and "no-such-model" in reason
    report = run_audit(load_dataset(smear_set["root"]), predictor, no_model_reason=reason)
    assert report["skipped"]["outliers"] == reason == report["skipped"]["label_issues"]
    assert "outliers" not in report and "label_issues" not in report


def test_leakage_between_two_folders(tmp_path: Path) -> None:
    train, test = tmp_path / "train", tmp_path / "test"
    for k in range(5):
        write(train / "monocyte" / f"MO_{k}.jpg", jpeg_bytes(smear(200 + k)))
        write(test / "monocyte" / f"MO_test_{k}.jpg", jpeg_bytes(smear(300 + k)))
    shutil.copy(train / "monocyte" / "MO_0.jpg", test / "monocyte" / "copied.jpg")
    write(test / "lymphocyte" / "reencoded.jpg", jpeg_bytes(smear(201), quality=60))
    report = run_audit(load_dataset(train), against=load_dataset(test))
    leakage = report["leakage"]
    assert [(e["path"], e["other_path"], e["match"]) for e in leakage["exact"]] == [
        (str(train / "monocyte" / "MO_0.jpg"), str(test / "monocyte" / "copied.jpg"), "bytes")]
    assert [(e["path"], e["other_path"], e["other_label"]) for e in leakage["near"]] == [
        (str(train / "monocyte" / "MO_1.jpg"), str(test / "lymphocyte" / "reencoded.jpg"), "lymphocyte")]
    assert leakage["n_images_leaked"] == 2 and leakage["n_other"] == 7
    assert "leakage" not in report["skipped"]


def test_npz_dataset_exact_duplicates(tmp_path: Path) -> None:
    images = np.stack([smear(k, size=32) for k in range(6)])
    images[5] = images[2]
    np.savez(tmp_path / "set.npz", images=images, labels=np.array([0, 0, 1, 1, 2, 3]))
    report = run_audit(load_dataset(tmp_path / "set.npz"))
    assert [g["paths"] for g in report["exact_duplicates"]] == [
        [f"{tmp_path / 'set.npz'}::images[2]", f"{tmp_path / 'set.npz'}::images[5]"]]
    assert report["conflicting_label_groups"][0]["labels"] == ["eosinophil", "ig"]


def test_cached_audit_reuses_report_for_same_dataset_and_settings(smear_set, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "appdata"))
    dataset = load_dataset(smear_set["root"])
    first = cached_audit(dataset)
    cache_file = audit_cache_path(dataset)
    assert cache_file.name == f"audit-{dataset.fingerprint()}-nomodel.json" and cache_file.is_file()

    def must_not_run(*args, **kwargs):
        raise AssertionError("cache miss")

    monkeypatch.setattr("bloodcell_core.audit.runner.run_audit", must_not_run)
    assert cached_audit(dataset) == first
    with pytest.raises(AssertionError, match="cache miss"):
        cached_audit(dataset, settings=AuditSettings(hamming=2))  # other settings: recomputed


def test_cli_writes_every_key(smear_set, tmp_path, monkeypatch, capsys) -> None:
    features = {}
    for path in sorted(smear_set["root"].rglob("*")):
        if path.is_file() and path != smear_set["corrupt"]:
            image = np.asarray(Image.open(path).convert("RGB"))
            features[FakePredictor.key(image)] = np.random.default_rng(len(features)).normal(size=6)
    monkeypatch.setattr("bloodcell_core.audit.runner.load_predictor",
                        lambda model_dir: (FakePredictor(features), None))
    other = tmp_path / "other"
    write(other / "basophil" / "BA_0.jpg", smear_set["conflict_a"].read_bytes())
    out = tmp_path / "reports" / "audit.json"
    code = main(["audit", str(smear_set["root"]), "--model", "whatever", "--against", str(other),
                 "--hamming", "6", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report) == REPORT_KEYS
    assert report["settings"]["hamming"] == 6
    assert report["skipped"] == {}
    assert report["leakage"]["n_images_leaked"] == 2  # both copies of the shared image
    assert "report written to" in capsys.readouterr().out


def test_cli_rejects_bad_threshold_with_one_line(smear_set, tmp_path, capsys) -> None:
    code = main(["audit", str(smear_set["root"]), "--no-model", "--hamming", "99",
                 "--out", str(tmp_path / "a.json")])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: hamming threshold must be 0-64 bits, got 99"
