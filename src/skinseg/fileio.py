"""Writing files so that a crash or a full disk never leaves a half-written file under the real name."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import hashlib
import io
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from skinseg.errors import SkinsegError

_UMASK = os.umask(0)
os.umask(_UMASK)


_holds = 0  # atomic writes and other blocks holding interrupts back, under way
_interrupt_pending = False


def paths_from_text(config) -> None:
    """A frozen config's path fields, given as text as a caller from Python may give them (`data="my_site"`,
    `inputs=("a.jpg",)`, `inputs="folder"`), made Paths; called first in its __post_init__. A str where the
    config reads Paths failed later with an AttributeError."""
    for field in dataclasses.fields(config):
        kind = str(field.type)  # the annotation's text (`from __future__ import annotations`)
        if "Path" not in kind:
            continue
        value, many = getattr(config, field.name), kind.startswith("tuple")
        if isinstance(value, str) and value:  # "" is left for the config's own check: Path("") is "."
            value = (Path(value),) if many else Path(value)
        elif many and isinstance(value, (tuple, list)):
            value = tuple(Path(item) if isinstance(item, str) and item else item for item in value)
        else:
            continue
        object.__setattr__(config, field.name, value)


def raise_interrupt(signum, frame) -> None:
    """Handler for SIGINT and SIGTERM: KeyboardInterrupt, held back while a file is being written.

    An interrupt that lands between creating a temporary file and entering the code that removes it (or
    between a with-statement's __enter__ and its body) would leave the temporary behind; held back, it is
    raised as soon as the write is whole or cleaned up.
    """
    global _interrupt_pending
    if _holds:
        _interrupt_pending = True
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C/SIGTERM back (with `raise_interrupt` installed) until the block is done, then raise it."""
    global _holds, _interrupt_pending
    _holds += 1
    try:
        yield
    finally:
        _holds -= 1
        if _interrupt_pending and not _holds:
            _interrupt_pending = False
            raise KeyboardInterrupt


class OutputExists(SkinsegError):
    """An output that another command created while this one was working: left as it is."""


# Temporaries are `.NAME.xxxxxxxx.SUFFIX` (mkstemp's 8 random characters). A NAME of more than _NAME_ROOM bytes
# keeps its start and its end (`_segmentation.png`, by which the next segment knows its own) around a `~`, so that
# the temporary's name is no longer than NAME itself could be (a 240-character mask name failed on its temporary).
_NAME_ROOM = 200


def _temporary_name(name: str) -> str:
    """`name`, or its start and end around a `~`, cut between characters (a name cut inside a UTF-8 character is
    refused by some file systems, APFS among them)."""
    encoded = name.encode("utf-8", NAMES_AS_THEY_ARE)
    if len(encoded) <= _NAME_ROOM:
        return name
    half = _NAME_ROOM // 2 - 1
    head = encoded[:half].decode("utf-8", "ignore")
    tail = encoded[-half:].decode("utf-8", "ignore")
    return f"{head}~{tail}"


TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9]+)$")


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; move it to `path` only if the block succeeds. Without `replace`,
    a file that appeared at `path` meanwhile (another command's) is left as it is: OutputExists."""
    with interrupts_held():
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(
                prefix=f".{_temporary_name(path.name)}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent
            )
        except OSError as exc:  # named by the file the user gave, not the folder it would be in
            raise cannot_write_here(exc, path) from None
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            usual_permissions(tmp)
            _move(tmp, path, replace)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise SkinsegError(f"could not write file: {exc.strerror or exc}", path) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# What os.link says where the file system has no hard links (some network, FAT and exFAT file systems).
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV}
_WRITTEN_MEANWHILE = "was written by another command meanwhile: left as it is"


def _move(tmp: Path, path: Path, replace: bool) -> None:
    """`tmp` renamed to `path`; without `replace`, only where `path` does not exist, checked and done in one
    step (a hard link) so that two commands never both write it. Without hard links it is checked, then
    moved: two commands finishing the same file within that moment could still both write it."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExists(_WRITTEN_MEANWHILE, path) from None
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(path):
            raise OutputExists(_WRITTEN_MEANWHILE, path) from None
        os.replace(tmp, path)
    tmp.unlink(missing_ok=True)


def remove_temporaries(folder: Path, names: re.Pattern) -> list[Path]:
    """The temporaries that a killed skinseg command left in `folder` (`.NAME.xxxxxxxx.SUFFIX`, where NAME ends
    in SUFFIX) for files whose NAME `names` finds, removed. Call it only while holding the folder."""
    removed = []
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            match = TEMPORARY.match(entry.name)
            if not match or not match["name"].endswith(match["suffix"]) or not entry.is_file(follow_symlinks=False):
                continue
            if not names.search(match["name"]):
                continue
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def cannot_write_here(exc: OSError, path: str | Path) -> SkinsegError:
    """The one error for a place where a file or folder cannot be made (read-only, no permission, no room)."""
    return SkinsegError(f"cannot write here: {exc.strerror or exc}", path)


def real_path(path: str | Path, folders: dict[str, str]) -> str:
    """`os.path.realpath(path)`, with each folder resolved once (`folders` remembers them): the same answer for a
    folder of 10000 images without a stat of every folder above each of them."""
    parent, name = os.path.split(os.fspath(path))
    if name in ("", ".", ".."):
        return os.path.realpath(path)
    if parent not in folders:
        folders[parent] = os.path.realpath(parent or ".")
    joined = os.path.join(folders[parent], name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


def usual_permissions(path: str | Path) -> None:
    """mkstemp makes 0600 files: an output gets the permissions the user's umask gives a new file."""
    os.chmod(path, 0o666 & ~_UMASK)


def refuse_existing(path: str | Path, overwrite: bool) -> None:
    """The rule for outputs: a file that exists is replaced only with `overwrite`."""
    if not overwrite and Path(path).exists():
        raise SkinsegError("exists (use `overwrite` to replace it)", path)


# A file name that is not UTF-8 reaches Python as surrogates; written back with this error handler it keeps its
# own bytes instead of failing the whole write (issue #21).
NAMES_AS_THEY_ARE = "surrogateescape"


def write_text(path: str | Path, text: str) -> None:
    """UTF-8 text, atomically; file names that are not UTF-8 keep their bytes."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8", errors=NAMES_AS_THEY_ARE)


def write_csv(path: str | Path, rows: list[dict], fieldnames: list[str] | tuple[str, ...] | None = None) -> None:
    """Rows as CSV with a header, atomically; columns are `fieldnames` or the first row's keys."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fieldnames or (rows[0] if rows else [])), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex: how a cache, a manifest and a model's metadata know a file."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def cache_root() -> Path:
    """Where skinseg keeps what it can rebuild (data prepared on the fly, ONNX exports): $SKINSEG_CACHE or
    ~/.cache/skinseg."""
    return Path(os.environ.get("SKINSEG_CACHE", Path.home() / ".cache" / "skinseg"))


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, atomically (`atomic_path`). safetensors reports a failed write (a full disk) as its own
    SafetensorError, which is not an OSError: it becomes one line naming the file, the temporary removed."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:
            reason = str(exc).removeprefix("Error while serializing: ").removeprefix("I/O error: ")
            reason = reason.split(" (os error")[0]
            raise SkinsegError(f"could not write file: {reason}", path) from None


def name_limit(folder: Path, limits: dict[Path, int]) -> int:
    """The longest file name, in bytes, that the file system of `folder` (or of its nearest existing parent)
    takes; `limits` remembers it per folder."""
    if folder not in limits:
        existing = next((p for p in (folder, *folder.parents) if p.is_dir()), Path("."))
        try:
            limits[folder] = os.pathconf(existing, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows): the usual limit
            limits[folder] = 255
    return limits[folder]


def check_name_length(path: Path, limits: dict[Path, int]) -> None:
    """A file name longer than its file system takes, refused before any work (the OS would refuse the write)."""
    size, limit = len(os.fsencode(path.name)), name_limit(path.parent, limits)
    if size > limit:
        raise SkinsegError(f"its name is {size} bytes long, and this file system takes at most {limit}", path)
