"""The model card (``card.json``) as a typed :class:`ModelCard`, plus helpers that need nothing but the card.

Low in the layers on purpose: :mod:`bloodcell_core.models.store` (which checks a card before
loading TensorFlow), :mod:`bloodcell_core.inference` and :mod:`bloodcell_core.reporting` all
read the card through these, and this module imports nothing above :mod:`bloodcell_core.errors`.

A card is read once into a :class:`ModelCard` (``ModelCard.from_json``) and written back with
``to_json()``.  Keys the dataclasses don't name are kept in ``extra`` and the original key order
is remembered, so ``ModelCard.from_json(d).to_json() == d`` for every card (old cards included):
a field is written back when the card had it or when it now differs from its default.
"""
from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bloodcell_core.errors import BloodcellError

# Test-time views a card may name (card.inference.tta); bloodcell_core.inference.tta implements them.
VIEW_NAMES: tuple[str, ...] = ("identity", "rot180", "hflip", "vflip", "transpose", "rot90", "rot270")
NO_TTA: tuple[str, ...] = ("identity",)
# Keys every card on disk has (checked by bloodcell_core.models.store on reading and saving).
REQUIRED_CARD_KEYS: tuple[str, ...] = ("classes", "input_size", "crop_size", "architecture")


def parse_views(text: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """'identity,rot180' (or a list) -> a validated tuple of view names; empty means no TTA."""
    if text is None:
        return NO_TTA
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    unknown = [n for n in names if n not in VIEW_NAMES]
    if unknown:
        raise BloodcellError(f"unknown test-time view(s) {', '.join(unknown)}; choose from {', '.join(VIEW_NAMES)}")
    if len(set(names)) != len(names):
        raise BloodcellError(f"test-time views listed twice: {','.join(names)}")
    return tuple(names) or NO_TTA


# -- checking a JSON value against a field's kind -------------------------------------------------------------

# numbers' ABCs, not int/float: an in-memory card may hold numpy scalars (numpy registers them there).
def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_strings(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)


_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "str": ("a string", lambda v: isinstance(v, str)),
    "int": ("an integer", _is_int),
    "number": ("a number", _is_number),
    "strings": ("a list of strings", _is_strings),
    "list": ("a list", lambda v: isinstance(v, (list, tuple))),
    "dict": ("an object", lambda v: isinstance(v, Mapping)),
    "views": ("a list of view names or a comma-separated string", lambda v: isinstance(v, str) or _is_strings(v)),
}


def _json_type(value: Any) -> str:
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _typed(kind: str, default: Any = None, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field read from the card key of the same name and checked against ``kind``."""
    if factory is not None:
        return field(default_factory=factory, metadata={"kind": kind})
    return field(default=default, metadata={"kind": kind})


def _section(cls: type) -> Any:
    """A nested section field (an empty section when the card has none)."""
    return field(default_factory=cls, metadata={"kind": "section", "section": cls})


def _default(spec: dataclasses.Field) -> Any:
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def _is_default(value: Any, spec: dataclasses.Field) -> bool:
    """Whether ``value`` is the field's default (``is None`` first: an in-memory value may be an array)."""
    default = _default(spec)
    if default is None or value is None:
        return value is default
    return type(value) is type(default) and value == default


def _checked(spec: dataclasses.Field, value: Any, where: str) -> Any:
    kind = spec.metadata["kind"]
    if kind == "section":
        return spec.metadata["section"].from_json(value, where)
    if value is None and _default(spec) is None:
        return None
    label, ok = _KINDS[kind]
    if not ok(value):
        raise BloodcellError(f"model card: {where} should be {label}, not {_json_type(value)}")
    return value


S = TypeVar("S", bound="CardSection")


@dataclass
class CardSection:
    """A part of the card: the named fields, typed, plus every other key as it was (``extra``)."""

    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    _keys: tuple[str, ...] = field(default=(), repr=False, compare=False)  # the JSON's keys, in order

    @classmethod
    def _specs(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls) if "kind" in f.metadata}

    @classmethod
    def from_json(cls: type[S], mapping: Any, where: str = "") -> S:
        """The section read from its JSON object (``where``: its key path, for messages); a wrong type
        raises a one-line BloodcellError."""
        if not isinstance(mapping, Mapping):
            raise BloodcellError(f"model card{': ' + where if where else ''} should be an object, "
                                 f"not {_json_type(mapping)}")
        specs = cls._specs()
        values = {key: _checked(specs[key], value, f"{where}.{key}" if where else key)
                  for key, value in mapping.items() if key in specs}
        extra = {key: value for key, value in mapping.items() if key not in specs}
        return cls(**values, extra=extra, _keys=tuple(mapping))

    def to_json(self) -> dict[str, Any]:
        """The JSON object: keys the card had in their order, then fields set since, then new extra keys."""
        specs = self._specs()
        out: dict[str, Any] = {}
        for key in dict.fromkeys([*self._keys, *specs, *self.extra]):
            if key in specs:
                value = getattr(self, key)
                if key in self._keys or not _is_default(value, specs[key]):
                    out[key] = value.to_json() if isinstance(value, CardSection) else value
            elif key in self.extra:
                out[key] = self.extra[key]
        return out


@dataclass
class Inference(CardSection):
    """How to run the model: its test-time views (older cards have none: a single pass).

    ``tta_extra`` views are added only for crops the first views leave unsure: those whose
    averaged top probability (before the temperature) is below ``tta_extra_below``
    (:func:`bloodcell_core.inference.tta.run_views_where_unsure`). Older cards have neither.
    """

    tta: list[str] | str | None = _typed("views")
    tta_extra: list[str] | str | None = _typed("views")
    tta_extra_below: float | None = _typed("number")

    @property
    def views(self) -> tuple[str, ...]:
        return parse_views(self.tta)

    @property
    def extra_views(self) -> tuple[str, ...]:
        """The views added for unsure crops; () when the card has none (or no threshold)."""
        if not self.tta_extra or not self.tta_extra_below:
            return ()
        extra = parse_views(self.tta_extra)
        repeated = sorted(set(extra) & set(self.views))
        if repeated:
            raise BloodcellError(f"test-time view(s) {', '.join(repeated)} both in tta and tta_extra")
        return extra

    @property
    def averages_views(self) -> bool:
        """Whether a prediction averages several views of the crop (always, or for unsure crops)."""
        return len(self.views) > 1 or bool(self.extra_views)

    def check(self) -> None:
        """Raise :class:`BloodcellError` for an unknown view name or a view in both lists (no TensorFlow)."""
        parse_views(self.tta)
        parse_views(self.tta_extra)
        self.extra_views  # noqa: B018 (the repeated-view check lives there)

    def describe(self) -> str:
        """How a prediction is made, in words: 'one pass' or the views averaged (and when more are added)."""
        views = self.views
        words = "one pass" if views == NO_TTA else f"averaged over {len(views)} views ({', '.join(views)})"
        if self.extra_views:
            words += (f", plus {', '.join(self.extra_views)} where the top probability over those is below "
                      f"{float(self.tta_extra_below):.2f}")
        return words


@dataclass
class Calibration(CardSection):
    """Temperature scaling fitted on held-out images (:mod:`bloodcell_core.evaluation.calibration`)."""

    method: str | None = _typed("str")
    temperature: float | None = _typed("number")
    n_images: int | None = _typed("int")
    ece_before: float | None = _typed("number")
    ece_after_crossfitted: float | None = _typed("number")
    fitted_on: str | None = _typed("str")

    @property
    def effective_temperature(self) -> float:
        """The temperature to divide logits by: 1.0 (no change) when the card has none."""
        return 1.0 if self.temperature is None else float(self.temperature)


@dataclass
class ReviewPolicy(CardSection):
    """The needs-review rule (:func:`bloodcell_core.inference.review_flags.fit_review_policy`)."""

    confidence_threshold: float | None = _typed("number")
    ood_score: str | None = _typed("str")
    ood_threshold: float | None = _typed("number")
    ood_density: dict[str, Any] | None = _typed("dict")  # feature statistics (inference.feature_density)
    ood_centroids: list[Any] | None = _typed("list")  # older cards: class centroids for a cosine distance
    batch_shift: dict[str, Any] | None = _typed("dict")
    n_calibration_images: int | None = _typed("int")
    validation_coverage: float | None = _typed("number")
    validation_flagged: float | None = _typed("number")
    validation_accuracy_accepted: float | None = _typed("number")
    rule: str | None = _typed("str")


@dataclass
class Preprocessing(CardSection):
    """How images become model input; ``stain_normalisation`` holds a reference when that is on."""

    stain_normalisation: dict[str, Any] | None = _typed("dict")


@dataclass
class TrainingData(CardSection):
    """What the model was trained on: the (combined) source and, for several, one entry per source."""

    source: str | None = _typed("str")
    fingerprint: str | None = _typed("str")
    n_images: int | None = _typed("int")
    n_validation: int | None = _typed("int")
    class_counts: dict[str, int] = _typed("dict", factory=dict)
    sources: list[dict[str, Any]] = _typed("list", factory=list)


@dataclass
class ModelCard(CardSection):
    """Everything serving needs besides the weights, and what a reader needs to trust the model.

    Sections that are measured reports (validation, robustness, shift bench, other laboratories,
    adaptation, k-shot adaptation curves, training history, how the model was made) stay plain
    dicts: they are written whole and read by display code.
    """

    name: str | None = _typed("str")
    created: str | None = _typed("str")
    classes: list[str] = _typed("strings", factory=list)
    input_size: int | None = _typed("int")
    crop_size: int | None = _typed("int")
    architecture: str | None = _typed("str")
    parameters: int | None = _typed("int")
    preprocessing: Preprocessing = _section(Preprocessing)
    config: dict[str, Any] = _typed("dict", factory=dict)
    command: str | None = _typed("str")
    data: TrainingData = _section(TrainingData)
    calibration: Calibration = _section(Calibration)
    inference: Inference = _section(Inference)
    validation: dict[str, Any] = _typed("dict", factory=dict)
    validation_by_source: dict[str, Any] = _typed("dict", factory=dict)
    validation_shifted: dict[str, Any] = _typed("dict", factory=dict)
    review: ReviewPolicy = _section(ReviewPolicy)
    validation_items: list[str] = _typed("strings", factory=list)
    training: dict[str, Any] = _typed("dict", factory=dict)
    versions: dict[str, str] = _typed("dict", factory=dict)
    credit: str | None = _typed("str")
    crosslab: dict[str, Any] = _typed("dict", factory=dict)
    robustness: dict[str, Any] = _typed("dict", factory=dict)
    shift_bench: dict[str, Any] = _typed("dict", factory=dict)
    adaptation: dict[str, Any] = _typed("dict", factory=dict)
    adaptation_curve: dict[str, Any] = _typed("dict", factory=dict)  # k-shot curves, laboratories it never saw
    history: dict[str, Any] = _typed("dict", factory=dict)  # lineage of commands and ablation (reporting.history)

    @classmethod
    def of(cls, card: ModelCard | Mapping[str, Any]) -> ModelCard:
        """``card`` itself, or read from its JSON mapping (callers and tests may pass either)."""
        return card if isinstance(card, ModelCard) else cls.from_json(card)

    @property
    def views(self) -> tuple[str, ...]:
        """The test-time views the card asks for (validated)."""
        return self.inference.views

    def missing_keys(self) -> list[str]:
        """Required keys (:data:`REQUIRED_CARD_KEYS`) the card lacks."""
        present = self.to_json()
        return [key for key in REQUIRED_CARD_KEYS if key not in present]

    def replace(self, **changes: Any) -> ModelCard:
        """A copy with some fields changed; a section may be given as a dict (read with from_json)."""
        specs = self._specs()
        for key, value in changes.items():
            spec = specs.get(key)
            if spec is not None and spec.metadata["kind"] == "section" and not isinstance(value, CardSection):
                changes[key] = spec.metadata["section"].from_json(value, key)
        return dataclasses.replace(self, **changes)


def card_views(card: ModelCard | Mapping[str, Any]) -> tuple[str, ...]:
    """The views a model card asks for (older cards have none: a single pass)."""
    return ModelCard.of(card).views
