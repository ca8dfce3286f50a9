"""Named choices that users swap (architectures, losses, optimisers, schedules): one dict each, checked by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from skinseg.errors import SkinsegError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """A dict of name -> factory whose lookups fail with one line that lists the choices."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self[name] = item
            return item

        return add

    def check(self, name: str) -> str:
        if name not in self:
            raise SkinsegError(f"unknown {self.kind} '{name}'; choose one of {', '.join(self)}")
        return name

    def get_checked(self, name: str) -> T:
        return self[self.check(name)]
