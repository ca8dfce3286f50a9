"""What a command reads and writes, checked whole before any work: the one rule for every file skinseg writes.

Every command builds a Plan: its inputs (files it reads, folders whose contents it reads: images, masks, the
model, data folders and caches, a run it fine-tunes from) and its outputs (every file and folder it writes: a
run, a cache, masks, summaries, reports, figures, exports). `check()` applies the rule to the whole plan before
anything is loaded or written; `hold()` then locks the outputs that two processes could share, for as long as
the command works. The rule (docs/reliability.md):

- an input exists; no output is an input, lies in an input folder, or (being a folder) holds an input; this
  holds even with `overwrite`;
- a file output that exists is replaced only with `overwrite`; the exceptions are the ones the plan
  continues: a resumed run's own files, and the summary that segment continues with `skip_existing`;
- a file output is not a folder, a folder output is not a file, and no two outputs name one file;
- a locked output held by another skinseg process refuses this one at once (or is waited for, where the
  plan says so: a cache prepared on the fly).

The lock files are hidden (`.NAME.lock` beside a file, `.lock` inside a folder), removed when the command ends,
and taken with `filelock`, which works alike on Linux, macOS and Windows; a lock goes with its process, so a
killed command holds none (it may leave the empty file).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from skinseg.errors import SkinsegError
from skinseg.fileio import cannot_write_here, real_path, refuse_existing


@dataclass(frozen=True)
class Input:
    path: Path
    what: str  # how errors name it: "data folder", "model", "image"
    folder: bool = False  # its whole content is read: nothing may be written into it


@dataclass(frozen=True)
class Output:
    path: Path
    what: str  # how errors name it: "`summary`" (a setting, in backticks), "figure"
    folder: bool = False  # a folder the command writes files into
    owned: bool = False  # a folder of the command's own (a run, a cache): it may clear it, so it holds no input
    continued: bool = False  # an existing file is continued, not replaced: no `overwrite` needed
    lock: bool = False  # another process writing it refuses this one (or is waited for)


@dataclass
class Plan:
    """One command's inputs and outputs; `check()` them before any work, `hold()` the locks while working."""

    command: str
    overwrite: bool = False
    inputs: list[Input] = field(default_factory=list)
    outputs: list[Output] = field(default_factory=list)

    def read(self, path: str | Path, what: str, *, folder: bool = False) -> Path:
        self.inputs.append(Input(Path(path), what, folder))
        return Path(path)

    def read_data_set(self, path: str | Path) -> Path:
        """A data set: a folder (raw or prepared), or a .zip file."""
        path = Path(path)
        return self.read(path, "data folder", folder=path.is_dir() or path.suffix.lower() != ".zip")

    def write(
        self,
        path: str | Path,
        what: str,
        *,
        folder: bool = False,
        owned: bool = False,
        continued: bool = False,
        lock: bool = False,
        suffixes: tuple[str, ...] = (),
    ) -> Path:
        """An output; with `suffixes`, a file whose name must end in one of them (the first names its format)."""
        if suffixes and Path(path).suffix.lower() not in suffixes:
            short = len(suffixes[0]) <= 5  # a format's name (CSV, JSON, HTML, ONNX); not "SAFETENSORS"
            kind = suffixes[0][1:].upper() if short else f"a {suffixes[0]} file"
            raise SkinsegError(f"{what} writes {kind}: name the file {suffixes[0]}", path)
        self.outputs.append(Output(Path(path), what, folder or owned, owned, continued, lock))
        return Path(path)

    @property
    def paths(self) -> set[Path]:
        """Every path the plan names, read or written."""
        return {i.path for i in self.inputs} | {o.path for o in self.outputs}

    def check(self) -> None:
        """The rule, for the whole plan: the first problem is one error naming its path."""
        folders: dict[str, str] = {}  # real_path's memory: one realpath per folder, not per file
        for source in self.inputs:
            if not os.path.lexists(source.path):
                raise SkinsegError(f"{source.what} not found", source.path)
            if source.folder and not source.path.is_dir():
                raise SkinsegError(f"is a file, but the {source.what} must be a folder", source.path)
        files = {real_path(i.path, folders): i for i in self.inputs if not i.folder}
        input_folders = [(os.path.realpath(i.path), i) for i in self.inputs if i.folder]
        written: dict[str, Output] = {}
        parents: set[Path] = set()  # those known to be folders or absent
        made_folders = {real_path(o.path, folders): o for o in self.outputs if o.folder}
        for output in self.outputs:
            real = real_path(output.path, folders)
            if not output.folder and real in made_folders:
                raise SkinsegError(f"{made_folders[real].what} and {output.what} name one path", output.path)
            _check_against_inputs(output, real, files, input_folders)
            _check_parent(output, parents)
            if output.folder:
                if output.path.exists() and not output.path.is_dir():
                    raise SkinsegError(f"{output.what} takes a folder, and this is a file", output.path)
                continue
            if real in written:
                raise SkinsegError(f"{written[real].what} and {output.what} name one file", output.path)
            written[real] = output
            if output.path.is_dir():
                raise SkinsegError(f"is a folder; {output.what} takes a file name", output.path)
            if not output.continued:
                refuse_existing(output.path, self.overwrite)

    @contextlib.contextmanager
    def hold(self, wait: bool = False) -> Iterator[None]:
        """Lock every output marked `lock` until the block ends: held by another process, each one refuses
        this command at once, or (`wait`) is waited for. A folder of the command's own that this process made
        and locked, and that the failed block left with nothing but its lock and marker, is removed: a failed
        command leaves no trace."""
        with contextlib.ExitStack() as stack:
            for item in self.outputs:
                if item.lock:
                    stack.enter_context(_locked(item, wait))
            yield


MARKERS = (".lock", ".skinseg-cache")  # a folder's lock, and the mark of a prepared cache (data.cache)
FOLDER_LOCK = ".skinseg.lock"  # the lock inside a folder that is not the command's own
OWN_MARKS = (*MARKERS, FOLDER_LOCK)  # what a folder this command made may hold and still be removed as empty


def _only_markers(folder: Path) -> bool:
    try:
        return all(entry.name in OWN_MARKS for entry in folder.iterdir())
    except OSError:
        return False


def lock_file(output: Output) -> Path:
    """Where an output's lock lives: `.lock` inside a folder of the command's own (a run, a cache),
    `.skinseg.lock` inside any other folder (of masks, of figures: a `.lock` there may be the user's), else
    `.NAME.lock` beside the file."""
    if output.folder:
        return output.path / (MARKERS[0] if output.owned else FOLDER_LOCK)
    path = output.path.absolute()
    return path.with_name(f".{path.name}.lock")


@contextlib.contextmanager
def _locked(output: Output, wait: bool) -> Iterator[None]:
    path = lock_file(output)
    made = output.folder and not output.path.exists()  # a folder this command makes for its lock
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise cannot_write_here(exc, output.path) from None
    lock = FileLock(path, timeout=-1 if wait else 0)
    try:
        _acquire(lock, path)
    except Timeout:
        raise SkinsegError(
            f"another skinseg command is writing it now: wait for it to finish, or give another {output.what}",
            output.path,
        ) from None
    except OSError as exc:  # named by the user's path: the lock file is ours, not theirs
        raise cannot_write_here(exc, output.path) from None
    try:
        yield
    finally:
        # No lock is left behind, nor a folder this command made and left with nothing but its marks. Removed
        # while held (POSIX; a waiting process sees that and takes the new file, _acquire); Windows refuses
        # that, and filelock removes the file on release there.
        remove_folder = made and _only_markers(output.path)
        for leftover in [path.parent / name for name in OWN_MARKS] if remove_folder else [path]:
            with contextlib.suppress(OSError):
                leftover.unlink()
        lock.release()
        if remove_folder:
            with contextlib.suppress(OSError):
                output.path.rmdir()


def _acquire(lock: FileLock, path: Path) -> None:
    """Take `lock`; where its holder removed the file between this process opening and locking it, the lock is
    on a file nobody else sees: let it go and take the file that is there now."""
    for attempt in range(100):
        try:
            lock.acquire()
        except FileNotFoundError:  # its last holder removed it (or its new folder) as this one opened it
            if attempt == 99:
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
            continue
        descriptor = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
        try:
            current = descriptor is None or os.path.samestat(os.fstat(descriptor), os.stat(path))
        except OSError:
            current = False
        if current:
            return
        lock.release()
    raise Timeout(str(path))  # taken and removed under it a hundred times: as busy as a lock held


def _check_parent(output: Output, known: set[Path]) -> None:
    """No folder above an output is a file (the error would otherwise come from the OS, mid-work)."""
    for parent in output.path.parents:
        if parent in known:
            return
        if parent.exists() and not parent.is_dir():
            raise SkinsegError(f"cannot write here: {parent} is a file, not a folder", output.path)
        known.add(parent)


_OWN_PLACE = "refusing to write there; give it a place of its own"


def _check_against_inputs(
    output: Output, real: str, files: dict[str, Input], input_folders: list[tuple[str, Input]]
) -> None:
    """No output is an input file, an input folder or in one; no folder of the command's own holds an input."""
    if real in files:
        raise SkinsegError(
            f"is the {files[real].what}, an input of this command: refusing to write over it", output.path
        )
    for folder, source in input_folders:
        if real == folder:
            raise SkinsegError(f"is the {source.what}, an input of this command: {_OWN_PLACE}", output.path)
        if _within(real, folder):
            words = f"lies in the {source.what} {source.path}, an input of this command: {_OWN_PLACE}"
            raise SkinsegError(words, output.path)
        if output.owned and _within(folder, real):
            words = f"holds the {source.what} {source.path}, an input of this command: {_OWN_PLACE}"
            raise SkinsegError(words, output.path)
    if output.owned:
        inside = next((i for r, i in files.items() if _within(r, real)), None)
        if inside is not None:
            raise SkinsegError(
                f"holds the {inside.what} {inside.path}, an input of this command, which it could replace: move that"
                " elsewhere",
                output.path,
            )


def _within(path: str, folder: str) -> bool:
    """Whether the real path `path` is `folder` or lies under it."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
