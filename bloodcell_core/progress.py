"""One progress interface for the CLI (tqdm bar) and the app (st.progress).

Core functions take ``progress: ProgressFn | None`` and call it as ``progress(done, total, label)``.
"""
from __future__ import annotations

import sys
from typing import Callable, Iterable, Iterator, TypeVar

ProgressFn = Callable[[int, int, str], None]
T = TypeVar("T")


def tqdm_progress() -> ProgressFn:
    """A ProgressFn drawing a tqdm bar on stderr; a new bar starts whenever the label changes."""
    from tqdm import tqdm

    state: dict[str, object] = {"bar": None, "label": None}

    def update(done: int, total: int, label: str) -> None:
        bar = state["bar"]
        if bar is None or state["label"] != label:
            if bar is not None:
                bar.close()  # type: ignore[union-attr]
            bar = tqdm(total=total, desc=label, file=sys.stderr, leave=True, dynamic_ncols=True)
            state["bar"], state["label"] = bar, label
        bar.n = done  # type: ignore[union-attr]
        bar.refresh()  # type: ignore[union-attr]
        if done >= total:
            bar.close()  # type: ignore[union-attr]
            state["bar"] = None

    return update


def track(items: Iterable[T], total: int, label: str, progress: ProgressFn | None,
          every: int = 1) -> Iterator[T]:
    """Yield ``items``, reporting progress every ``every`` items and at the end."""
    done = 0
    for item in items:
        yield item
        done += 1
        if progress is not None and (done % every == 0 or done == total):
            progress(done, total, label)
