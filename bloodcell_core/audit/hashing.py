"""Image fingerprints for the duplicate checks, and vectorised search over them.

Per image, one pass computes

- ``content``: SHA-256 of the file bytes (:func:`bloodcell_core.data.images.content_hash`,
  the identity the review store uses);
- ``phash``: imagehash's 64-bit perceptual hash, packed into a uint64
  (:func:`bloodcell_core.data.duplicates.phash64`);
- ``digest``: a BLAKE2 digest of decoded pixels, the key for "same pixels, different bytes".

Speed (13,520 dev JPEGs of 192x192 on the 2-core box, measured): a full decode costs
~0.6 ms per image and imagehash's resize of a full image another ~0.2 ms, so decoding
everything at full size plus hashing takes 12-13 s, too close to the 15 s budget.  JPEGs
are therefore decoded with PIL's draft mode straight to grayscale at 1/4 scale (48x48
for 192x192; libjpeg scales in the DCT, so it is cheaper than decoding), which is all
the 32x32 perceptual hash looks at.  Hashing plus both duplicate searches then take
~5.4 s on the idle box (8.6-10 s while other jobs kept the load average at 7).  Threads
barely help (the work is mostly GIL-bound PIL/numpy glue); 2 workers measured best of 1/2/4.

Exact duplicates are identical bytes *or* identical decoded pixels.  Byte identity is
exact and free.  For pixel identity the draft-decoded pixels serve as a candidate key:
identical full-resolution pixels give identical draft pixels, so only images sharing a
draft digest but not their bytes are decoded in full (:meth:`HashTable.full_digest`) and
compared; on the dev set that confirmation decodes nothing.  Non-JPEG files and npz
arrays are decoded in full anyway, so their digest is already exact.  A PNG copy of a
JPEG has a different digest kind and is reported as a near duplicate (distance 0-2).

Near-duplicate search and grouping (~0.3 s for the dev set), the perceptual hash and the
Hamming threshold live in :mod:`bloodcell_core.data.duplicates`, shared with the training
split, so the audit and the split agree on what a duplicate is.
"""
from __future__ import annotations

import hashlib
import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from bloodcell_core.data.datasets import Dataset
from bloodcell_core.data.duplicates import PairList, group_pairs, hamming_pairs, phash64
from bloodcell_core.data.images import MAX_PIXELS, MIN_SIDE, content_hash, decode_image, read_bytes
from bloodcell_core.errors import UnreadableImageError
from bloodcell_core.progress import ProgressFn, track

HASH_WORKERS = 2
DRAFT_SIZE = 32  # libjpeg picks the smallest DCT scale that keeps both sides >= this


@dataclass
class HashTable:
    """Fingerprints of every item of ``dataset``; ``valid[i]`` is False for images that failed."""

    dataset: Dataset = field(repr=False)
    content: list[str | None]
    digest: list[bytes | None]
    digest_is_exact: np.ndarray  # bool: digest covers full-resolution RGB pixels
    phash: np.ndarray  # uint64, 0 where invalid
    valid: np.ndarray  # bool
    failures: list[dict[str, str]]  # {path, reason} of items that couldn't be read or decoded

    def __len__(self) -> int:
        return len(self.content)

    @property
    def valid_indices(self) -> np.ndarray:
        return np.flatnonzero(self.valid)

    def full_digest(self, index: int) -> bytes:
        """Digest of the full-resolution RGB pixels (decodes unless the stored digest is exact)."""
        if self.digest_is_exact[index]:
            return self.digest[index]  # type: ignore[return-value]
        return _pixel_digest(self.dataset.load(index))


@dataclass(frozen=True)
class NearDuplicates:
    pairs: PairList  # indices into the hash table, first < second
    groups: list[np.ndarray]  # connected components of the pairs, each sorted, largest first


def _pixel_digest(pixels: np.ndarray) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.asarray(pixels.shape, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(pixels).tobytes())
    return digest.digest()


def _draft_grayscale(data: bytes) -> Image.Image | None:
    """A valid JPEG decoded at reduced size to grayscale; None for anything else or any doubt."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.format != "JPEG" or width * height > MAX_PIXELS or min(width, height) < MIN_SIDE:
                return None
            image.draft("L", (DRAFT_SIZE, DRAFT_SIZE))
            image.load()
            return ImageOps.exif_transpose(image).convert("L")
    except (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError,
            Image.DecompressionBombError, Image.DecompressionBombWarning):
        return None


def _fingerprint_pixels(rgb: np.ndarray) -> tuple[bytes, bool, np.uint64]:
    return _pixel_digest(rgb), True, phash64(Image.fromarray(rgb).convert("L"))


def _fingerprint_bytes(data: bytes, name: str) -> tuple[bytes, bool, np.uint64]:
    """Digest, whether it is exact, and the perceptual hash; raises UnreadableImageError.

    Anything the fast JPEG path doesn't accept goes through the app's own decoder, so
    unreadable files get the same reason everywhere.
    """
    gray = _draft_grayscale(data)
    if gray is None:
        return _fingerprint_pixels(decode_image(data, name))
    return _pixel_digest(np.asarray(gray)), False, phash64(gray)


def _fingerprint_item(dataset: Dataset, index: int) -> tuple[str, bytes, bool, np.uint64] | str:
    """Fingerprints of one item, or the reason it can't be read."""
    try:
        if dataset.arrays is not None:
            pixels = dataset.load(index)
            return (content_hash(np.ascontiguousarray(dataset.arrays[index]).tobytes()),
                    *_fingerprint_pixels(pixels))
        data = read_bytes(dataset.items[index])
        return (content_hash(data), *_fingerprint_bytes(data, dataset.items[index]))
    except UnreadableImageError as exc:
        return str(exc)


def hash_dataset(dataset: Dataset, progress: ProgressFn | None = None,
                 workers: int = HASH_WORKERS) -> HashTable:
    """Read, decode and fingerprint every image (threads); failures are recorded, not raised."""
    n_items = len(dataset)
    content: list[str | None] = [None] * n_items
    digest: list[bytes | None] = [None] * n_items
    exact = np.zeros(n_items, dtype=bool)
    phash = np.zeros(n_items, dtype=np.uint64)
    valid = np.zeros(n_items, dtype=bool)
    failures: list[dict[str, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda i: _fingerprint_item(dataset, i), range(n_items))
        for index, result in enumerate(track(results, n_items, "Hashing images", progress, every=256)):
            if isinstance(result, str):
                failures.append({"path": dataset.items[index], "reason": result})
                continue
            content[index], digest[index], exact[index], phash[index] = result
            valid[index] = True
    return HashTable(dataset, content, digest, exact, phash, valid, failures)


def _codes(hashes: HashTable | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Packed hashes to search and the table indices they stand for."""
    if isinstance(hashes, HashTable):
        index = hashes.valid_indices
        return hashes.phash[index], index
    codes = np.asarray(hashes, dtype=np.uint64)
    return codes, np.arange(len(codes))


def find_near_duplicates(hashes: HashTable | np.ndarray, threshold: int) -> NearDuplicates:
    """Pairs within ``threshold`` bits of perceptual hash and their groups (table indices)."""
    codes, index = _codes(hashes)
    pairs = hamming_pairs(codes, threshold)
    groups = group_pairs(len(codes), pairs.first, pairs.second)
    return NearDuplicates(PairList(index[pairs.first], index[pairs.second], pairs.distance),
                          [np.sort(index[g]) for g in groups])


def find_exact_duplicates(hashes: HashTable) -> list[tuple[np.ndarray, str]]:
    """Groups of identical images, each ``(indices, match)`` with match "bytes" or "pixels".

    Identical bytes group directly; images with different bytes but the same draft-pixel
    digest are confirmed by a full decode before they join a group.
    """
    index = hashes.valid_indices
    content_id = _dense_ids([hashes.content[i] for i in index])
    digest_id = _dense_ids([hashes.digest[i] for i in index])
    links: list[tuple[int, int]] = []
    for members in _members_by_id(digest_id):
        distinct = {int(content_id[m]): int(m) for m in members}  # one representative per content
        if len(distinct) > 1:
            links += _confirmed_pixel_links(hashes, index, list(distinct.values()))
    # Node per distinct content; pixel-identical contents are linked.
    n_contents = int(content_id.max()) + 1 if len(index) else 0
    link_array = np.asarray(links, dtype=np.int64).reshape(-1, 2)
    components = group_pairs(n_contents, content_id[link_array[:, 0]], content_id[link_array[:, 1]])
    merged = np.arange(n_contents)
    for component in components:
        merged[component] = component[0]
    groups = []
    for members in _members_by_id(merged[content_id]):
        if len(members) > 1:
            match = "bytes" if len(set(content_id[members].tolist())) == 1 else "pixels"
            groups.append((np.sort(index[members]), match))
    return sorted(groups, key=lambda g: (-len(g[0]), int(g[0][0])))


def _confirmed_pixel_links(hashes: HashTable, index: np.ndarray, candidates: list[int]) -> list[tuple[int, int]]:
    """Pairs of candidate positions whose full-resolution pixels are identical."""
    by_digest: dict[bytes, int] = {}
    links = []
    for position in candidates:
        try:
            full = hashes.full_digest(int(index[position]))
        except UnreadableImageError:
            continue
        if full in by_digest:
            links.append((by_digest[full], position))
        else:
            by_digest[full] = position
    return links


def _dense_ids(keys: list) -> np.ndarray:
    """Equal keys -> equal small integers."""
    ids: dict = {}
    return np.fromiter((ids.setdefault(k, len(ids)) for k in keys), dtype=np.int64, count=len(keys))


def _members_by_id(ids: np.ndarray) -> list[np.ndarray]:
    """Positions grouped by id, only ids that occur more than once."""
    if len(ids) == 0:
        return []
    order = np.argsort(ids, kind="stable")
    boundaries = np.flatnonzero(np.diff(ids[order])) + 1
    return [g for g in np.split(order, boundaries) if len(g) > 1]
