"""Small, real-looking generated images for tests (no dataset files are ever copied)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def synthetic_cell(size: int = 96, centre: tuple[float, float] | None = None, radius: float | None = None,
                   seed: int = 0, nucleus_colour: tuple[int, int, int] = (95, 45, 140)) -> np.ndarray:
    """A smear-like image: pinkish background, pale red discs, one purple stained nucleus."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    image = np.empty((size, size, 3), np.float32)
    image[:] = (238, 212, 196)
    for _ in range(6):  # red cells
        cy, cx, r = rng.uniform(0, size), rng.uniform(0, size), size * rng.uniform(0.07, 0.1)
        ring = np.hypot(yy - cy, xx - cx) < r
        image[ring] = (222, 170, 172)
    cy, cx = centre if centre is not None else (size / 2, size / 2)
    r = radius if radius is not None else size * 0.18
    image[np.hypot(yy - cy, xx - cx) < r * 1.4] = (200, 170, 200)  # cytoplasm
    image[np.hypot(yy - cy, xx - cx) < r] = nucleus_colour
    image += rng.normal(0, 3, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_class_folders(root: Path, classes: list[str], per_class: int = 6, size: int = 64) -> Path:
    """Folder dataset whose classes differ visibly (nucleus size and colour), so a model can learn them."""
    colours = [(95, 45, 140), (150, 60, 60), (60, 40, 110), (130, 90, 170), (80, 30, 90),
               (110, 70, 150), (70, 60, 160), (140, 50, 120), (100, 100, 160)]
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            radius = size * (0.1 + 0.03 * (c % 4))
            image = synthetic_cell(size, radius=radius, seed=c * 1000 + i, nucleus_colour=colours[c % len(colours)])
            Image.fromarray(image).save(folder / f"{name}_{i}.png")
    return root
