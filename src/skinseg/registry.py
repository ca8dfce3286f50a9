"""Named choices that users swap (architectures, losses, optimisers, schedules, data layouts): one dict each,
checked by name; the help and the error for an unknown name list the choices from here."""

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
        self.about: dict[str, str] = {}  # a few words on a choice, for the help

    @property
    def names(self) -> tuple[str, ...]:
        """Every choice, in the order the help lists them."""
        return (*self.also, *self)

    def choices(self, first: str | None = None) -> str:
        """The choices in words ("a, b or c"), `first` (the default, say) first."""
        names = self.names
        ordered = [first, *(name for name in names if name != first)] if first in names else list(names)
        return spoken(f"{name} ({self.about[name]})" if name in self.about else name for name in ordered)

    def register(self, name: str, about: str | None = None) -> Callable[[T], T]:
        if about:
            self.about[name] = about

        def add(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self[name] = item
            return item

        return add

    def register_lazy(self, name: str, target: str, about: str | None = None) -> None:
        """Register "package.module:attribute", imported when it is first looked up: the names are known (for
        the help) without importing what they name (torch)."""
        self.register(name, about)(_Lazy(target))  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> T:
        item = super().__getitem__(name)
        if isinstance(item, _Lazy):
            item = item.load()
            super().__setitem__(name, item)
        return item

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


class _Lazy:
    def __init__(self, target: str):
        self.target = target

    def load(self):
        import importlib

        module, attribute = self.target.split(":")
        return getattr(importlib.import_module(module), attribute)
