"""Choosing and ordering the rows a loader returns: shuffling and (stratified) subsets."""

from __future__ import annotations

import numpy as np


def choose_rows(labels, *, limit: int | None, seed: int | None, shuffle: bool, stratify: bool) -> np.ndarray:
    """Indices of the rows to return, in the order to return them.

    Args:
        labels: one label per row (used only when `stratify`).
        limit: number of rows to keep (1..len(labels)), or None for all of them.
        seed: seed of the shuffle and of the subset; None draws a fresh random order.
        shuffle: False keeps the file order, and `limit` then keeps the first rows.
        stratify: take `limit` rows with the class proportions of the whole set (exactly balanced for a balanced
            set; the largest-remainder rule decides the odd rows).
    """
    num_rows = len(labels)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or not 1 <= limit <= num_rows:
            raise ValueError(f"limit must be an integer between 1 and {num_rows} (the number of rows), got {limit!r}.")
    if not shuffle:
        return np.arange(num_rows if limit is None else limit)

    rng = np.random.default_rng(seed)
    if limit is None or limit == num_rows:
        return rng.permutation(num_rows)
    if not stratify:
        return rng.permutation(num_rows)[:limit]

    _, class_of_row = np.unique(np.asarray(labels), return_inverse=True)
    class_sizes = np.bincount(class_of_row)
    exact_quotas = limit * class_sizes / num_rows
    quotas = np.floor(exact_quotas).astype(np.int64)
    by_largest_remainder = np.argsort(-(exact_quotas - quotas), kind="stable")
    quotas[by_largest_remainder[: limit - quotas.sum()]] += 1
    chosen = np.concatenate([
        rng.choice(np.flatnonzero(class_of_row == class_index), size=quota, replace=False)
        for class_index, quota in enumerate(quotas)
    ])
    return rng.permutation(chosen)


def take(values: list, indices: np.ndarray) -> list:
    return [values[index] for index in indices]
