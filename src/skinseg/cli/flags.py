"""The one place where the library's setting names become the command line's flags.

The library names a setting in its messages as `field` or `field=value`, in backticks (a Python caller reads the
field of its config). Every line the command line prints from the library passes through `in_flags`, which
names the running command's own option for it: `batch_size` -> --batch-size, `csv_file` -> --csv,
`postprocess=False` -> --no-postprocess, `device=cuda` -> --device cuda.
"""

from __future__ import annotations

import contextlib
import re
import typing
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from typer.models import OptionInfo

SETTING = re.compile(r"`([a-z][a-z0-9_]*)(?:=([^`\s]+))?`")

# The running command's options: parameter name -> (its flag, its negative flag or None).
_OPTIONS: ContextVar[dict[str, tuple[str, str | None]] | None] = ContextVar("options", default=None)


def options_of(command: Callable) -> dict[str, tuple[str, str | None]]:
    """The flags of a command's Typer options, by parameter name (`csv_file` -> --csv)."""
    options = {}
    for name, hint in typing.get_type_hints(command, include_extras=True).items():
        for info in getattr(hint, "__metadata__", ()):
            if isinstance(info, OptionInfo):
                named = (info.default,) if isinstance(info.default, str) else ()  # Annotated: the first is a name
                decls = [part for decl in (*named, *(info.param_decls or ())) for part in decl.split("/")]
                longs = [decl for decl in decls if decl.startswith("--")]
                if longs:
                    options[name] = (longs[0], next((d for d in longs[1:] if d.startswith("--no-")), None))
    return options


@contextlib.contextmanager
def flags_of(command: Callable) -> Iterator[None]:
    """While a command runs, `in_flags` names its own options."""
    token = _OPTIONS.set(options_of(command))
    try:
        yield
    finally:
        _OPTIONS.reset(token)


def flag_of(name: str, value: str | None = None) -> str:
    """How the command line names setting `name` (given `value`): the running command's own option where it has
    one, else --name-with-dashes."""
    flag, negative = (_OPTIONS.get() or {}).get(name, (f"--{name.replace('_', '-')}", None))
    if value == "False":
        return negative or f"--no-{flag[2:]}"
    return flag if value in (None, "True") else f"{flag} {value}"


def in_flags(text: str) -> str:
    """`text` from the library with each `setting` named as the command line's flag."""
    return SETTING.sub(lambda match: flag_of(match[1], match[2]), text) if "`" in text else text
