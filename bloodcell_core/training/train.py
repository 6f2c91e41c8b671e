"""The train command's engine: prepare data, split, fit, calibrate review policy, write card."""
from __future__ import annotations

import itertools
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.duplicates import NEAR_DUPLICATE_HAMMING, duplicate_groups
from bloodcell_core.data.sampling import stratified_sample
from bloodcell_core.errors import DatasetError
from bloodcell_core.evaluation.metrics import classification_report, coverage_curve
from bloodcell_core.models.card import ModelCard
from bloodcell_core.preprocess.localise import CROP_FACTOR
from bloodcell_core.progress import ProgressFn
from bloodcell_core.training.prepare import PreparedData, concatenate_prepared, prepare_arrays
from bloodcell_core.training.resume import RunCheckpoints
from bloodcell_core.training.split import grouped_split

PBC_CREDIT = ("Trained on the PBC dataset: A. Acevedo et al., 'A dataset of microscopic peripheral blood cell "
              "images for development of automatic recognition systems', Data in Brief 30 (2020) 105474, "
              "CC BY 4.0.")


def _option(default: Any = None, help: str = "", factory: Any = None) -> Any:
    """A TrainConfig field whose ``help`` is what ``train --help`` says of its flag."""
    if factory is not None:
        return field(default_factory=factory, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    arch: str = _option("compact", "compact (default) or a keras.applications backbone, e.g. efficientnetb0")
    input_size: int = _option(96, "side in pixels of the image the network sees")
    crop_size: int | None = _option(None, "side of the prepared cell crop (default: input size; the model "
                                          "resizes to its input when they differ)")
    width: float = _option(1.0, "channel multiplier of the compact CNN")
    epochs: int = _option(40, "passes over the training data (early stopping may end sooner)")
    batch_size: int = _option(64, "images per training step")
    learning_rate: float = _option(2e-3, "peak learning rate (AdamW, warm-up then cosine decay)")
    weight_decay: float = _option(1e-4, "AdamW weight decay")
    warmup_epochs: int = _option(2, "epochs of learning-rate warm-up")
    label_smoothing: float = _option(0.1, "label smoothing of the cross-entropy")
    dropout: float = _option(0.2, "dropout before the softmax layer")
    patience: int = _option(8, "epochs without a lower validation loss before stopping (best weights kept)")
    val_fraction: float = _option(0.15, "held-out share of each source and class (grouped by near-duplicates)")
    seed: int = _option(42, "seed of the split, the epoch order and the augmentations")
    augment: list[str] = _option(help="online augmentations", factory=lambda: ["flip", "rot90", "zoom", "colour",
                                                                                 "noise", "mixup"])
    domain_variants: int = _option(1, "offline copies of each image under a random scanner shift")
    corruption_variants: int = _option(1, "offline copies of each image under a random MedMNIST-C corruption "
                                          "(so the robustness benchmark's corruptions are not new to the model)")
    clean_fraction: float = _option(0.5, "share of each epoch's samples drawn from the clean crop (the rest "
                                         "from the offline copies)")
    weights: str | None = _option(None, "local ImageNet weights file (no top) for a keras.applications "
                                        "backbone; nothing is downloaded")
    head_epochs: int = _option(3, "with --weights: epochs training the head on the frozen backbone first")
    unfreeze_fraction: float = _option(0.3, "with --weights: top share of the backbone's layers fine-tuned "
                                            "after the head (BatchNorm stays frozen)")
    max_images: int | None = _option(None, "at most this many images of each source, equal per class (quick runs)")
    workers: int | None = _option(None, "processes preparing the crops (default: every core)")
    precise_bn_batches: int = _option(0, "batches to re-estimate BatchNorm statistics on after training, kept "
                                         "only if the validation loss falls; 0: off")
    init_model: str | None = _option(None, "a trained model folder to start from (same classes; the compact "
                                           "CNN may change crop size or grow wider)")
    tta: str = _option("identity", "test-time views stored in the card, e.g. identity,rot180")
    min_source_share: float = _option(0.1, "with several sources, each is repeated to at least this share of "
                                           "an epoch")
    zoom: float = _option(0.2, "range (+-) of the zoom augmentation: another laboratory frames its cells "
                               "differently")
    appearance_share: float = _option(0.75, "share of images the appearance augmentation gives another "
                                            "laboratory's look")
    grayscale_share: float = _option(0.15, "share of those turned grey, so colour can't carry the class alone")


def _subsample(dataset: Dataset, max_images: int | None, seed: int) -> Dataset:
    if not max_images or max_images >= len(dataset):
        return dataset
    return dataset.subset(stratified_sample(dataset.labels, max_images, seed, quotas="equal"))


def _check_trainable(dataset: Dataset, prepared: PreparedData) -> None:
    counts = np.bincount(dataset.labels[prepared.readable], minlength=len(dataset.classes))
    if (counts > 0).sum() < 2:
        raise DatasetError(f"{dataset.source}: need readable images of at least 2 classes to train")


def balance_sources(indices: np.ndarray, source_index: np.ndarray, min_share: float) -> np.ndarray:
    """Training indices with each small source repeated until it is >= ``min_share`` of the epoch.

    A second laboratory of a few hundred cells next to 11,000 PBC cells would otherwise be
    a rounding error in the loss; repeating it (each repeat augmented differently) gives it weight.
    """
    sources = np.unique(source_index[indices])
    if len(sources) < 2 or min_share <= 0:
        return indices
    parts = [indices[source_index[indices] == s] for s in sources]
    total = len(indices)
    balanced = []
    for part in parts:
        wanted = int(np.ceil(min_share * total))
        repeats = max(1, int(np.ceil(wanted / max(len(part), 1)))) if len(part) < wanted else 1
        balanced.append(np.tile(part, repeats))
    return np.sort(np.concatenate(balanced))


def _epoch_batches(prepared: PreparedData, indices: np.ndarray, labels_onehot: np.ndarray,
                   sample_weights: np.ndarray, config: TrainConfig, rng: np.random.Generator):
    """Yield one epoch of (images, labels, weights): each sample clean or one of its variants."""
    order = rng.permutation(indices)
    n_variants = prepared.variants.shape[1]
    for start in range(0, len(order), config.batch_size):
        batch = order[start:start + config.batch_size]
        use_variant = (rng.random(len(batch)) >= config.clean_fraction) & (n_variants > 0)
        which = rng.integers(0, max(n_variants, 1), len(batch))
        images = prepared.crops[batch].copy()
        if use_variant.any():
            images[use_variant] = prepared.variants[batch[use_variant], which[use_variant]]
        yield images, labels_onehot[batch], sample_weights[batch]


def _make_train_dataset(prepared, indices, labels_onehot, sample_weights, config, first_epoch: int = 0):
    """The epoch stream; epoch e's order depends only on (seed, e), so a resumed run sees the same data."""
    import tensorflow as tf

    from bloodcell_core.training.augment import build_augmenter

    epoch_counter = itertools.count(first_epoch)
    size = prepared.crops.shape[1]
    n_classes = labels_onehot.shape[1]
    signature = (tf.TensorSpec((None, size, size, 3), tf.uint8), tf.TensorSpec((None, n_classes), tf.float32),
                 tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(
        lambda: _epoch_batches(prepared, indices, labels_onehot, sample_weights, config,
                               np.random.default_rng([config.seed, next(epoch_counter)])),
        output_signature=signature)
    steps = int(np.ceil(len(indices) / config.batch_size))
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(steps))
    augment = build_augmenter(tuple(config.augment), config.seed, config.zoom, config.appearance_share,
                              config.grayscale_share)
    return dataset.map(augment, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _compile(model, config: TrainConfig, steps_per_epoch: int, epochs: int, learning_rate: float) -> None:
    import keras

    total = max(1, steps_per_epoch * epochs)
    warmup = min(total // 2, steps_per_epoch * config.warmup_epochs)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10, decay_steps=max(1, total - warmup),
        warmup_target=learning_rate, warmup_steps=warmup, alpha=0.01)
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  metrics=["accuracy"], jit_compile=False)


def _fit(model, train_ds, val_data, config: TrainConfig, steps: int, epochs: int, learning_rate: float,
         initial_epoch: int = 0, callbacks: list | None = None):
    import keras

    _compile(model, config, steps, epochs, learning_rate)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                         restore_best_weights=True)
    verbose = 1 if sys.stderr.isatty() else 2
    return model.fit(train_ds, validation_data=val_data, epochs=initial_epoch + epochs,
                     initial_epoch=initial_epoch, callbacks=[stop, *(callbacks or [])], verbose=verbose)


def _set_backbone_trainable(model, fraction: float | None) -> None:
    """None freezes the whole backbone; a fraction unfreezes that top share (BatchNorm stays frozen)."""
    import keras

    from bloodcell_core.models.architectures import backbone_layer_names

    names = backbone_layer_names(model)
    first_trainable = len(names) if fraction is None else int(len(names) * (1 - fraction))
    for i, name in enumerate(names):
        layer = model.get_layer(name)
        layer.trainable = i >= first_trainable and not isinstance(layer, keras.layers.BatchNormalization)


def train(datasets: Dataset | list[Dataset], config: TrainConfig, command: str = "",
          progress: ProgressFn | None = None, run_dir: str | Path | None = None,
          callbacks: list | None = None) -> tuple[Any, ModelCard]:
    """Train a model on one or several labelled sources; returns (keras model, model card).

    With ``run_dir`` the run keeps epoch checkpoints in ``run_dir/checkpoint`` (see
    :mod:`bloodcell_core.training.resume`): calling again with the same run_dir continues an
    interrupted run from its last finished epoch instead of starting over.
    """
    from bloodcell_core.data.datasets import combine_datasets

    started = time.time()
    sources = [_subsample(d, config.max_images, config.seed)
               for d in (datasets if isinstance(datasets, list) else [datasets])]
    dataset, source_index = combine_datasets(sources)
    crop_size = config.crop_size or config.input_size
    prepared = concatenate_prepared([  # one cache entry per source: adding a source reuses the others'
        prepare_arrays(d, crop_size, config.domain_variants, config.corruption_variants, config.seed,
                       config.workers, progress) for d in sources])
    _check_trainable(dataset, prepared)
    train_idx, val_idx = _split(dataset, prepared, source_index, config, sources)

    import keras

    keras.utils.set_random_seed(config.seed)
    n_classes = len(dataset.classes)
    onehot = np.eye(n_classes, dtype=np.float32)[dataset.labels]
    sample_weights = _class_weights(dataset.labels, train_idx, n_classes)
    model, parent = _starting_model(config, dataset.classes, crop_size, n_classes)
    checkpoints = None if run_dir is None else RunCheckpoints(Path(run_dir) / "checkpoint")
    epoch_idx = balance_sources(train_idx, source_index, config.min_source_share)
    val_data = (prepared.crops[val_idx].astype(np.float32), onehot[val_idx])
    steps = int(np.ceil(len(epoch_idx) / config.batch_size))
    phases = _phases(config)
    histories = []
    for number, (epochs, learning_rate, first_epoch, fraction) in enumerate(phases):
        if config.weights:
            _set_backbone_trainable(model, fraction)
        if checkpoints is not None and checkpoints.phase_done(number, model):
            histories.append(checkpoints.epoch_logs(number))
            continue
        resume_at = checkpoints.resume_epoch(number, first_epoch) if checkpoints is not None else 0
        train_ds = _make_train_dataset(prepared, epoch_idx, onehot, sample_weights, config,
                                       first_epoch + resume_at)
        extra = [*(checkpoints.callback(number) if checkpoints is not None else []), *(callbacks or [])]
        history = _fit(model, train_ds, val_data, config, steps, epochs, learning_rate, first_epoch, extra)
        histories.append(checkpoints.finish_phase(number, model) if checkpoints is not None else history.history)
    recalibration = _recalibrate(model, prepared, train_idx, onehot, sample_weights, val_data, config)
    card = _make_card(model, dataset, prepared, config, train_idx, val_idx, histories, command,
                      time.time() - started, (sources, source_index))
    card.training["batchnorm_recalibration"] = recalibration
    if checkpoints is not None and checkpoints.resumed:
        card.training["resumed"] = checkpoints.resumed
    if parent is not None:
        card.training["initialised_from"] = parent
    return model, card


def _phases(config: TrainConfig) -> list[tuple[int, float, int, float | None]]:
    """(epochs, learning rate, first epoch, backbone unfreeze fraction) per fit call."""
    if config.weights:  # two-phase fine-tuning: head on a frozen backbone, then the unfrozen top
        return [(config.head_epochs, config.learning_rate, 0, None),
                (config.epochs, config.learning_rate / 10, config.head_epochs, config.unfreeze_fraction)]
    return [(config.epochs, config.learning_rate, 0, None)]


def _split(dataset: Dataset, prepared: PreparedData, source_index: np.ndarray, config: TrainConfig,
           sources: list[Dataset]) -> tuple[np.ndarray, np.ndarray]:
    """Grouped by near-duplicates, stratified by (source, class) so every source is held out too.

    Continuing from a model (``init_model``), a source the parent trained on keeps the parent's
    held-out images as validation (and its training images as training): a fresh split would
    put images the parent learned from into validation and flatter every held-out figure.
    """
    readable = np.flatnonzero(prepared.readable)
    kept_val = _parent_validation(config, sources, source_index)
    fresh = readable[~np.isin(source_index[readable], list(kept_val))]
    train_idx, val_idx = [], []
    if len(fresh):
        groups = duplicate_groups(prepared.phashes[fresh])
        strata = np.unique(source_index[fresh] * len(dataset.classes) + dataset.labels[fresh], return_inverse=True)[1]
        train_pos, val_pos = grouped_split(strata, groups, config.val_fraction, config.seed)
        train_idx.append(fresh[train_pos])
        val_idx.append(fresh[val_pos])
    for source, is_val in kept_val.items():
        rows = readable[source_index[readable] == source]
        val_idx.append(rows[is_val[rows]])
        train_idx.append(rows[~is_val[rows]])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def _parent_validation(config: TrainConfig, sources: list[Dataset],
                       source_index: np.ndarray) -> dict[int, np.ndarray]:
    """source number -> mask over all images: held out by the parent model (its card's validation_items)."""
    if not config.init_model:
        return {}
    from bloodcell_core.data.subsets import is_training_source, validation_indices
    from bloodcell_core.models.store import read_card

    card = read_card(config.init_model)
    listed = card.validation_items
    kept: dict[int, np.ndarray] = {}
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in sources])])
    for number, source in enumerate(sources):
        if not listed or not is_training_source(card, source):
            continue
        mask = np.zeros(len(source_index), bool)
        mask[offsets[number] + validation_indices(source, listed)] = True
        if mask.any():
            kept[number] = mask
    return kept


def _class_weights(labels: np.ndarray, train_idx: np.ndarray, n_classes: int) -> np.ndarray:
    present = np.unique(labels[train_idx])
    weight_of = np.ones(n_classes, np.float32)
    weight_of[present] = compute_class_weight("balanced", classes=present, y=labels[train_idx])
    return weight_of[labels].astype(np.float32)


def _starting_model(config: TrainConfig, classes: list[str], crop_size: int, n_classes: int):
    from bloodcell_core.models.architectures import build_model

    if config.init_model:
        return _initial_model(config, classes, crop_size)
    return build_model(config.arch, n_classes, config.input_size, crop_size, config.dropout, config.weights,
                       config.width), None


def _source_summaries(sources: list[Dataset], source_index: np.ndarray, train_idx: np.ndarray,
                      val_idx: np.ndarray) -> list[dict[str, Any]]:
    """What the card says about each training source (seen_in_training reads the fingerprints)."""
    return [{"source": d.source, "fingerprint": d.fingerprint(), "n_images": len(d),
             "class_counts": dict(zip(d.classes, np.bincount(d.labels, minlength=len(d.classes)).tolist())),
             "n_train": int((source_index[train_idx] == i).sum()), "n_validation": int((source_index[val_idx] == i).sum())}
            for i, d in enumerate(sources)]


def _validation_by_source(probabilities: np.ndarray, labels: np.ndarray, val_sources: np.ndarray,
                          sources: list[Dataset], classes: list[str]) -> dict[str, Any]:
    """Held-out accuracy of each source on its own (the PBC figure is not diluted by another lab's),
    from the validation probabilities the card already computed."""
    if len(sources) < 2:
        return {}
    results = {}
    for i, source in enumerate(sources):
        rows = val_sources == i
        if rows.any():
            report = classification_report(probabilities[rows], labels[rows], classes)
            results[Path(source.source).name] = {"n_images": int(rows.sum()), "accuracy": report["accuracy"],
                                                "balanced_accuracy": report["balanced_accuracy"]}
    return results


def _initial_model(config: TrainConfig, classes: list[str], crop_size: int) -> tuple[Any, dict[str, Any]]:
    """A trained model to continue from (fine-tuning on new data, or a second schedule), checked to fit."""
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.models.store import load_model

    model, card = load_model(config.init_model)
    if list(card.classes) != list(classes):
        raise BloodcellError(f"{config.init_model}: its classes {card.classes} differ from the data's {classes}")
    parent_width = float(card.config.get("width", 1.0))
    if card.crop_size != crop_size or card.architecture != config.arch or parent_width != config.width:
        model = _resized_compact(model, card, config, crop_size, parent_width)
    return model, {"name": card.name, "command": card.command, "created": card.created,
                   "data_fingerprint": card.data.fingerprint, "crop_size": card.crop_size,
                   "width": parent_width}


def _resized_compact(model, card, config: TrainConfig, crop_size: int, parent_width: float):
    """The parent's weights in the same compact CNN on another crop size or a greater width
    (see :mod:`bloodcell_core.models.carry`)."""
    from bloodcell_core.errors import BloodcellError
    from bloodcell_core.models.architectures import build_model
    from bloodcell_core.models.carry import carry_weights

    fits = card.architecture == config.arch == "compact" and config.width >= parent_width
    if not fits or card.input_size != card.crop_size or config.input_size != crop_size:
        raise BloodcellError(f"{config.init_model}: a {card.architecture} model (width {parent_width:g}) on "
                             f"{card.crop_size} px crops; this run asks for {config.arch} (width {config.width:g}) "
                             f"on {crop_size} px; only the compact CNN changes crop size or grows wider "
                             "(set --arch/--width/--input-size)")
    target = build_model("compact", len(card.classes), crop_size, None, config.dropout, width=config.width)
    return carry_weights(model, target)


def _recalibrate(model, prepared: PreparedData, train_idx, onehot, sample_weights, val_data,
                 config: TrainConfig) -> dict[str, Any]:
    """Precise BN (see :mod:`batchnorm`), kept only if it lowers the validation loss."""
    from bloodcell_core.training.batchnorm import batchnorm_layers, recalibrate_batchnorm

    layers = batchnorm_layers(model)
    if config.precise_bn_batches <= 0 or not layers:
        return {"applied": False, "reason": "off" if layers else "no trainable BatchNorm layers"}
    saved = [(layer.moving_mean.numpy(), layer.moving_variance.numpy()) for layer in layers]
    before = float(model.evaluate(*val_data, batch_size=256, verbose=0)[0])
    rng = np.random.default_rng(config.seed + 1)
    batches = (images for images, _, _ in _epoch_batches(prepared, train_idx, onehot, sample_weights, config, rng))
    used = recalibrate_batchnorm(model, itertools.islice(batches, config.precise_bn_batches))
    after = float(model.evaluate(*val_data, batch_size=256, verbose=0)[0])
    if after > before:
        for layer, (mean, variance) in zip(layers, saved):
            layer.moving_mean.assign(mean)
            layer.moving_variance.assign(variance)
    return {"applied": after <= before, "batches": used, "val_loss_before": round(before, 5),
            "val_loss_after": round(after, 5)}


def _history_summary(histories: list[dict[str, list[float]]]) -> dict[str, Any]:
    merged: dict[str, list[float]] = {}
    for history in histories:
        for key, values in history.items():
            merged.setdefault(key, []).extend(float(v) for v in values)
    val_loss = merged.get("val_loss", [])
    return {"epochs_run": len(val_loss), "best_epoch": int(np.argmin(val_loss)) + 1 if val_loss else None,
            "history": {k: [round(v, 5) for v in vals] for k, vals in merged.items()}}


def _make_card(model, dataset: Dataset, prepared: PreparedData, config: TrainConfig, train_idx, val_idx,
               histories, command: str, seconds: float,
               sourcing: tuple[list[Dataset], np.ndarray]) -> ModelCard:
    """The model card. ``sourcing`` is (training sources, source number of every image)."""
    from bloodcell_core.models.store import package_versions

    return ModelCard.from_json({
        "name": "+".join(Path(d.source).name for d in sourcing[0]) + f"-{config.arch}-{config.input_size}px",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "classes": dataset.classes,
        "input_size": config.input_size,
        "crop_size": prepared.crops.shape[1],
        "architecture": config.arch,
        "parameters": int(model.count_params()),
        "preprocessing": {"localisation": "stained-nucleus crop (bloodcell_core.preprocess.localise)",
                          "crop_factor": CROP_FACTOR, "scaling": "inside the model (0..255 input)"},
        "config": asdict(config),
        "command": command,
        "data": _data_section(dataset, prepared, train_idx, val_idx, sourcing),
        **_validation_sections(model, dataset, prepared, config, val_idx, sourcing),
        "training": {"seconds": round(seconds, 1), **_history_summary(histories)},
        "versions": package_versions(),
        "credit": _credit(sourcing[0]),
    })


def _data_section(dataset: Dataset, prepared: PreparedData, train_idx, val_idx,
                  sourcing: tuple[list[Dataset], np.ndarray]) -> dict[str, Any]:
    """The card's ``data``: what was trained on, how it was split, and each source's share."""
    counts = np.bincount(dataset.labels, minlength=len(dataset.classes))
    return {"source": dataset.source, "fingerprint": dataset.fingerprint(), "n_images": len(dataset),
            "class_counts": dict(zip(dataset.classes, counts.tolist())),
            "n_train": int(len(train_idx)), "n_validation": int(len(val_idx)),
            "unreadable": int((~prepared.readable).sum()),
            "localisation_found_rate": float(prepared.localised[prepared.readable].mean()),
            "split": f"stratified, grouped by exact/near duplicates (pHash Hamming <= {NEAR_DUPLICATE_HAMMING})",
            "sources": _source_summaries(*sourcing, train_idx, val_idx)}


def _validation_sections(model, dataset: Dataset, prepared: PreparedData, config: TrainConfig, val_idx,
                         sourcing: tuple[list[Dataset], np.ndarray]) -> dict[str, Any]:
    """The card's sections measured on the held-out images: calibration, inference (test-time views),
    validation reports (overall, per source, under shift), review policy and the held-out items."""
    from bloodcell_core.evaluation.calibration import apply_temperature, calibrate
    from bloodcell_core.inference.predictor import Predictor
    from bloodcell_core.inference.review_flags import fit_review_policy
    from bloodcell_core.inference.tta import parse_views

    inference = {"tta": list(parse_views(config.tta))}
    probe = Predictor.from_model(model, dataset.classes, {"inference": inference})
    raw_probabilities, features = probe.run_prepared(prepared.crops[val_idx].astype(np.float32))
    labels = dataset.labels[val_idx]
    calibration = calibrate(raw_probabilities, labels, config.seed)
    probabilities = apply_temperature(raw_probabilities, calibration["temperature"])
    report = classification_report(probabilities, labels, dataset.classes)
    report["coverage_curve"] = coverage_curve(probabilities.max(axis=1), probabilities.argmax(axis=1) == labels)
    sources, source_index = sourcing
    return {"calibration": calibration, "inference": inference, "validation": report,
            "validation_by_source": _validation_by_source(probabilities, labels, source_index[val_idx], sources,
                                                          dataset.classes),
            "validation_shifted": _shifted_accuracy(probe, prepared, config, val_idx, labels, dataset.classes),
            "review": fit_review_policy(probabilities, labels, features, len(dataset.classes)),
            "validation_items": [dataset.items[i] for i in val_idx]}


def _shifted_accuracy(probe, prepared: PreparedData, config: TrainConfig, val_idx, labels: np.ndarray,
                      classes: list[str]) -> dict[str, Any]:
    """Accuracy on the held-out images' domain-shift and corruption variants (the temperature can't change it)."""
    shifted = {}
    for v in range(prepared.variants.shape[1]):
        shifted_probs, _ = probe.run_prepared(prepared.variants[val_idx, v].astype(np.float32))
        kind = "domain_shift" if v < config.domain_variants else "corruption"
        summary = classification_report(shifted_probs, labels, classes)
        shifted[f"{kind}_{v}"] = {"accuracy": summary["accuracy"], "balanced_accuracy": summary["balanced_accuracy"]}
    return shifted


def _credit(sources: list[Dataset]) -> str:
    """The dataset credit: PBC's, plus every further training source by name."""
    return PBC_CREDIT + ("" if len(sources) < 2 else " Also trained on: "
                         + ", ".join(Path(d.source).name for d in sources[1:]) + " (cite their authors).")
