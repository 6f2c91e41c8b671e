"""What a duplicate is, once for the training split, adaptation and the audit.

An image's fingerprint is imagehash's 64-bit perceptual hash (``phash``) packed into a
uint64.  Two images are near duplicates when their hashes differ in at most
:data:`NEAR_DUPLICATE_HAMMING` bits (chosen on the dev set, see
:mod:`bloodcell_core.audit.near_duplicates`).  Pairs are found with ``np.bitwise_count``
of XOR in row blocks (upper triangle only) and grouped with
:func:`scipy.sparse.csgraph.connected_components`.
"""
from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

NEAR_DUPLICATE_HAMMING = 4  # max Hamming distance (bits) of two near duplicates' perceptual hashes
SEARCH_BLOCK_ROWS = 256  # rows per XOR block: 256 x 13,520 uint64 is ~28 MB; larger blocks measured slower


@dataclass(frozen=True)
class PairList:
    """Pairs ``(first[k], second[k])`` at Hamming distance ``distance[k]``."""

    first: np.ndarray
    second: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.first)


def phash64(image: Image.Image | np.ndarray) -> np.uint64:
    """imagehash's perceptual hash of ``image`` (PIL image or RGB/grayscale array) as a uint64."""
    if not isinstance(image, Image.Image):
        image = Image.fromarray(np.asarray(image))
    bits = imagehash.phash(image).hash.ravel()
    return np.packbits(bits).view(">u8")[0].astype(np.uint64)


def phashes(images: list[np.ndarray]) -> np.ndarray:
    """:func:`phash64` of each image, as a uint64 array."""
    return np.array([phash64(image) for image in images], dtype=np.uint64)


def hamming_pairs(codes: np.ndarray, threshold: int, block_rows: int = SEARCH_BLOCK_ROWS) -> PairList:
    """All pairs i < j of ``codes`` (uint64) within ``threshold`` bits, block by block."""
    codes = np.asarray(codes, dtype=np.uint64)
    firsts, seconds, distances = [], [], []
    for start in range(0, len(codes), block_rows):
        rows = codes[start:start + block_rows]
        distance = np.bitwise_count(rows[:, None] ^ codes[None, start:])  # columns from `start` on
        row, column = np.nonzero(distance <= threshold)
        upper = column > row  # strict upper triangle: each pair once, no self-pairs
        row, column = row[upper], column[upper]
        firsts.append(row + start)
        seconds.append(column + start)
        distances.append(distance[row, column])
    return _pair_list(firsts, seconds, distances)


def hamming_cross_pairs(codes_a: np.ndarray, codes_b: np.ndarray, threshold: int,
                        block_rows: int = SEARCH_BLOCK_ROWS) -> PairList:
    """All pairs (i in a, j in b) within ``threshold`` bits."""
    codes_a = np.asarray(codes_a, dtype=np.uint64)
    codes_b = np.asarray(codes_b, dtype=np.uint64)
    firsts, seconds, distances = [], [], []
    for start in range(0, len(codes_a), block_rows):
        distance = np.bitwise_count(codes_a[start:start + block_rows, None] ^ codes_b[None, :])
        row, column = np.nonzero(distance <= threshold)
        firsts.append(row + start)
        seconds.append(column)
        distances.append(distance[row, column])
    return _pair_list(firsts, seconds, distances)


def _pair_list(firsts: list[np.ndarray], seconds: list[np.ndarray], distances: list[np.ndarray]) -> PairList:
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return PairList(empty, empty.copy(), np.zeros(0, dtype=np.uint8))
    return PairList(np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64),
                    np.concatenate(distances).astype(np.uint8))


def _components(n_nodes: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    graph = coo_matrix((np.ones(len(first), dtype=np.int8), (first, second)), shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]


def group_pairs(n_nodes: int, first: np.ndarray, second: np.ndarray) -> list[np.ndarray]:
    """Connected components of the pair graph with more than one member, largest first."""
    if len(first) == 0:
        return []
    component = _components(n_nodes, first, second)
    order = np.argsort(component, kind="stable")
    sizes = np.bincount(component)
    groups = [members for members in np.split(order, np.cumsum(sizes)[:-1]) if len(members) > 1]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))


def duplicate_groups(codes: np.ndarray, threshold: int = NEAR_DUPLICATE_HAMMING) -> np.ndarray:
    """A group id per image: connected components of the near-duplicate graph (singletons too)."""
    pairs = hamming_pairs(codes, threshold)
    return _components(len(codes), pairs.first, pairs.second)
