"""Progress bars with rate and time left for the stages that can run for minutes (stderr, tqdm).

    bar = progress_bar(total, "rephrase scoring", "pair", enabled=cfg.run.progress)
    for item in progress_iter(items, len(items), "labels", "utterance", enabled=...): ...

A disabled bar costs nothing and prints nothing, so stage logic calls these unconditionally.
"""
from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
# below this many items a bar would flash by: it stays off
MIN_ITEMS = 5_000


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool):
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, mininterval=1.0,
                disable=not enabled or (total is not None and total < MIN_ITEMS))


def progress_iter(items: Iterable[T], total: int, desc: str, unit: str, enabled: bool) -> Iterator[T]:
    with progress_bar(total, desc, unit, enabled) as bar:
        for item in items:
            yield item
            bar.update(1)


def counted(batch_fn: Callable, bar) -> Callable:
    """batch_fn that advances `bar` by each batch's rows (for engines that run batches in this process)."""
    def run(batch):
        out = batch_fn(batch)
        bar.update(batch.num_rows)
        return out
    return run
