"""The typed model card (bloodcell_core.models.card.ModelCard): lossless round trip, defaults, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bloodcell_core.errors import BloodcellError, ModelLoadError
from bloodcell_core.models.card import NO_TTA, ModelCard, ReviewPolicy
from bloodcell_core.models.store import CARD_FILE, read_card, write_card

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "default" / CARD_FILE

OLD_CARD = {"name": "old", "classes": ["ig", "monocyte"], "input_size": 96, "crop_size": 96, "architecture": "compact",
            "review": {"confidence_threshold": 0.7, "ood_centroids": [[0.0, 1.0], [1.0, 0.0]]}}


def test_the_shipped_card_round_trips_exactly(tmp_path) -> None:
    text = SHIPPED.read_text()
    shipped = json.loads(text)
    card = ModelCard.from_json(shipped)
    assert card.to_json() == shipped and list(card.to_json()) == list(shipped)  # same keys, same order
    assert card.views == tuple(shipped["inference"]["tta"])
    assert card.calibration.temperature == shipped["calibration"]["temperature"]
    assert card.review.confidence_threshold == shipped["review"]["confidence_threshold"]
    write_card(card, tmp_path)
    assert (tmp_path / CARD_FILE).read_text() == text  # the file written back is byte-for-byte the same


def test_unknown_keys_are_kept_at_the_top_and_inside_sections() -> None:
    mapping = {**OLD_CARD, "lab_note": {"by": "someone"},
               "calibration": {"temperature": 0.9, "fitted_by": "a newer version"}}
    card = ModelCard.from_json(mapping)
    assert card.extra == {"lab_note": {"by": "someone"}} and card.calibration.extra == {"fitted_by": "a newer version"}
    assert card.to_json() == mapping


def test_an_old_card_without_the_newer_sections_loads_with_defaults() -> None:
    card = ModelCard.from_json(OLD_CARD)
    assert card.views == NO_TTA and card.calibration.effective_temperature == 1.0
    assert card.validation_items == [] and card.data.sources == [] and card.crosslab == {}
    assert card.review.ood_threshold is None and card.review.ood_centroids == OLD_CARD["review"]["ood_centroids"]
    assert card.to_json() == OLD_CARD  # no default is written back as if the card had it
    assert ModelCard.from_json({}).to_json() == {}


def test_a_section_set_by_a_writer_is_written_after_the_existing_keys() -> None:
    card = ModelCard.from_json(OLD_CARD).replace(robustness={"n_images": 10},
                                                 review={"confidence_threshold": 0.5, "rule": "r"})
    assert isinstance(card.review, ReviewPolicy) and card.review.rule == "r"
    written = card.to_json()
    assert list(written) == [*OLD_CARD, "robustness"] and written["review"] == {"confidence_threshold": 0.5, "rule": "r"}
    card.name = "renamed"
    assert card.to_json()["name"] == "renamed"


@pytest.mark.parametrize(("mapping", "message"), [
    ({**OLD_CARD, "classes": 8}, "model card: classes should be a list of strings, not an integer"),
    ({**OLD_CARD, "crop_size": "96"}, "model card: crop_size should be an integer, not a string"),
    ({**OLD_CARD, "review": {"confidence_threshold": "high"}},
     "model card: review.confidence_threshold should be a number, not a string"),
    ({**OLD_CARD, "inference": []}, "model card: inference should be an object, not a list"),
])
def test_a_wrong_type_is_a_one_line_error(mapping, message) -> None:
    with pytest.raises(BloodcellError) as caught:
        ModelCard.from_json(mapping)
    assert str(caught.value) == message


def test_reading_a_card_of_the_wrong_shape_names_the_file(tmp_path) -> None:
    (tmp_path / CARD_FILE).write_text(json.dumps({**OLD_CARD, "architecture": ["compact"]}))
    with pytest.raises(ModelLoadError, match=r"card\.json: model card: architecture should be a string") as caught:
        read_card(tmp_path)
    assert "\n" not in str(caught.value)
    (tmp_path / CARD_FILE).write_text(json.dumps({"name": "no classes"}))
    with pytest.raises(ModelLoadError, match="lacks classes, input_size, crop_size, architecture"):
        read_card(tmp_path)
