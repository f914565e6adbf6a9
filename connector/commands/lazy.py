"""Option values taken from heavy modules only when a command runs, so `rapport --help` stays quick."""

from __future__ import annotations

import importlib
from typing import Any

import click


class LazyChoice(click.Choice):  # type: ignore[type-arg]
    """A `click.Choice` whose values are `module:attribute`, imported the first time they are needed."""

    def __init__(self, ref: str, case_sensitive: bool = True) -> None:
        self.ref = ref
        self._choices: tuple[Any, ...] | None = None
        self.case_sensitive = case_sensitive

    @property  # type: ignore[override]
    def choices(self) -> tuple[Any, ...]:
        """The values, loaded on first use."""
        if self._choices is None:
            module, _, attribute = self.ref.partition(":")
            self._choices = tuple(getattr(importlib.import_module(module), attribute))
        return self._choices

    @choices.setter
    def choices(self, value: tuple[Any, ...]) -> None:
        self._choices = tuple(value)
