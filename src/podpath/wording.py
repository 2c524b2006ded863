"""Counts in sentences: "1 pod", "2 pods", never "1 pods" or "pod(s)"."""

from __future__ import annotations


def count(number: int, singular: str, plural: str | None = None) -> str:
    """`number` and the noun that agrees with it (plural defaults to singular + "s")."""
    if number == 1:
        return f"1 {singular}"
    return f"{number} {plural if plural is not None else singular + 's'}"
