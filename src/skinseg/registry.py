"""Named choices that users swap (architectures, losses, optimisers, schedules, data layouts): one dict each,
checked by name; `--help` and the error for an unknown name list the choices from here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from skinseg.errors import SkinsegError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A dict of name -> factory whose lookups fail with one line that lists the choices."""

    def __init__(self, kind: str, also: tuple[str, ...] = ()):
        """`also`: names that are choices without an entry (a layout's "auto"), listed first."""
        super().__init__()
        self.kind = kind
        self.also = also

    @property
    def names(self) -> tuple[str, ...]:
        """Every choice, in the order the help lists them."""
        return (*self.also, *self)

    def choices(self, first: str | None = None) -> str:
        """The choices in words ("a, b or c"), `first` (the default, say) first."""
        names = self.names
        return spoken([first, *(name for name in names if name != first)] if first in names else names)

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self[name] = item
            return item

        return add

    def check(self, name: str) -> str:
        if name not in self.names:
            raise SkinsegError(f"unknown {self.kind} '{name}'; choose one of {', '.join(self.names)}")
        return name

    def get_checked(self, name: str) -> T:
        return self[self.check(name)]


def spoken(names: Iterable[str]) -> str:
    """Names as a sentence lists them: "a", "a or b", "a, b or c"."""
    names = list(names)
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
