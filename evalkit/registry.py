"""The one rule every registry of evalkit follows: a name is registered once.

Metrics (``evalkit.metrics.METRICS``), feature extractors (``evalkit.features.EXTRACTORS``), reference generators
(``evalkit.generators.reference.BUILDERS``), experiments (``evalkit.experiments.cli``) and the generator kinds
reached by name (built-in kinds and ``evalkit.generators`` entry points) are ``Registry`` objects. A second
registration of a name — two plugins, or a module copied under a new file — would silently replace the first, and a
run would score with whichever module was imported last; ``add`` refuses it, naming both places.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from evalkit.errors import EvalError

T = TypeVar("T")


class DuplicateRegistration(EvalError):
    """A name given to a registry a second time."""


class Registry(dict[str, T], Generic[T]):
    """A ``name -> item`` mapping (read like a dict) whose ``add`` refuses a name it already holds.

    ``kind`` names what it holds in messages ("metric", "feature extractor", ...)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.origins: dict[str, str] = {}

    def add(self, name: str, item: T, origin: str) -> T:
        """Register ``item`` under ``name``; ``origin`` says where it comes from (a module, an entry point).

        Raises ``DuplicateRegistration`` when ``name`` is registered already."""
        if name in self:
            raise DuplicateRegistration(f"{self.kind} {name!r} is registered twice: by {self.origins[name]} and by "
                                        f"{origin}; rename one of them")
        self[name] = item
        self.origins[name] = origin
        return item
