"""Leakage: images of DATA that also occur (exactly or nearly) in another dataset, e.g. a test set.

A training image duplicated in the test set inflates every test metric, so each such
pair is listed.  Exact means identical bytes or identical pixels (confirmed by a full
decode, as within one dataset); near means perceptual hashes within the Hamming threshold.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from bloodcell_core.audit.base import AuditCheck, AuditContext
from bloodcell_core.audit.hashing import HashTable
from bloodcell_core.data.duplicates import hamming_cross_pairs
from bloodcell_core.errors import UnreadableImageError


def exact_cross_pairs(data: HashTable, other: HashTable) -> list[tuple[int, int, str]]:
    """``(data index, other index, "bytes" | "pixels")`` for identical images across the two."""
    by_content: dict[str, list[int]] = defaultdict(list)
    by_digest: dict[bytes, list[int]] = defaultdict(list)
    for j in other.valid_indices:
        by_content[other.content[j]].append(int(j))  # type: ignore[index]
        by_digest[other.digest[j]].append(int(j))  # type: ignore[index]
    pairs = []
    for i in data.valid_indices:
        same_bytes = by_content.get(data.content[i], [])  # type: ignore[arg-type]
        pairs += [(int(i), j, "bytes") for j in same_bytes]
        candidates = [j for j in by_digest.get(data.digest[i], []) if other.content[j] != data.content[i]]
        pairs += [(int(i), j, "pixels") for j in candidates if _same_pixels(data, int(i), other, j)]
    return pairs


def _same_pixels(data: HashTable, i: int, other: HashTable, j: int) -> bool:
    try:
        return data.full_digest(i) == other.full_digest(j)
    except UnreadableImageError:
        return False


class Leakage(AuditCheck):
    name = "leakage"

    def skip_reason(self, context: AuditContext) -> str | None:
        return None if context.against is not None else "no second dataset given to check against"

    def run(self, context: AuditContext) -> dict[str, Any]:
        data, other = context.hashes, context.against_hashes
        assert other is not None and context.against is not None
        exact = exact_cross_pairs(data, other)
        exact_set = {(i, j) for i, j, _ in exact}
        rows, columns = data.valid_indices, other.valid_indices
        near = hamming_cross_pairs(data.phash[rows], other.phash[columns], context.settings.hamming)
        near_pairs = sorted((int(d), int(rows[a]), int(columns[b]))
                            for a, b, d in zip(near.first, near.second, near.distance)
                            if (int(rows[a]), int(columns[b])) not in exact_set)
        other_dataset = context.against

        def describe(i: int, j: int) -> dict[str, Any]:
            return {"path": context.path(i), "label": context.label(i),
                    "other_path": other_dataset.items[j],
                    "other_label": other_dataset.classes[int(other_dataset.labels[j])]}

        leaked = {i for i, _, _ in exact} | {i for _, i, _ in near_pairs}
        return {"leakage": {
            "against": other_dataset.source,
            "against_fingerprint": other_dataset.fingerprint(),
            "n_other": len(other_dataset),
            "n_images_leaked": len(leaked),
            "exact": [{**describe(i, j), "match": match} for i, j, match in exact],
            "near": [{**describe(i, j), "distance": d} for d, i, j in near_pairs],
            "other_unreadable": list(other_dataset.unreadable) + other.failures,
        }}
