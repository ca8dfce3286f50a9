from __future__ import annotations

import os

# One thread everywhere in the tests, set before torch is first imported (in the test processes and in every
# subprocess, which inherits os.environ): OpenMP oversubscription on these tiny models costs far more than a second
# core gains.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
os.environ.update(THREAD_ENV)

import pickle  # noqa: E402
import shutil  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import TypeVar  # noqa: E402

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

from skinseg.data.config import PrepareConfig  # noqa: E402
from skinseg.data.prepare import prepare_dataset  # noqa: E402
from skinseg.data.synthetic import write_synthetic_dataset  # noqa: E402
from skinseg.models.config import ModelConfig  # noqa: E402
from skinseg.training.config import TrainConfig  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ISIC_DIR = REPO.parent / "shared" / "data" / "isic2018"
TINY = dict(model=ModelConfig(base_filters=4, depth=3), batch_size=8)

T = TypeVar("T")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread() -> None:
    """torch is imported here rather than at the top of this file, so that pytest-xdist's controller process,
    which runs no test, does not spend seconds importing it before it starts the workers."""
    import torch

    torch.set_num_threads(1)


CPU_KINDS = (
    "amx",
    "avx512_bf16",
    "emulated",
)  # the CPUs of this project's machines, as skinseg.runtime.precision names them


@pytest.fixture(params=CPU_KINDS)
def cpu_kind(request, monkeypatch) -> str:
    """The test runs once per kind of CPU, with the detection faked: a machine without native bf16 runs the
    branches of `--precision auto` that a machine with it takes, and the reverse. Tests whose numbers depend on
    the precision ask for this fixture, or pin the precision they mean."""
    from skinseg.runtime import precision

    monkeypatch.setattr(precision, "cpu_bf16_kind", lambda: request.param)
    return request.param


def made_once(tmp_path_factory, name: str, make: Callable[[Path], T]) -> T:
    """`make(folder)` once per test run. Under pytest-xdist the first worker to get here makes it in a folder that
    all workers share (the others wait for it) and the result is pickled beside it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    folder, result = root / name, root / f"{name}.pickle"
    with FileLock(root / f"{name}.lock"):
        if not result.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what another worker left when it failed
            folder.mkdir()
            result.write_bytes(pickle.dumps(make(folder)))
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def raw_dir(tmp_path_factory) -> Path:
    """30 synthetic 48x48 pairs in images/ + masks/ (masks named <id>_segmentation.png)."""
    return made_once(tmp_path_factory, "raw", lambda folder: write_synthetic_dataset(folder, count=30, size=48, seed=1))


@pytest.fixture(scope="session")
def prepared_dir(raw_dir, tmp_path_factory) -> Path:
    def prepare(folder: Path) -> Path:
        prepare_dataset(PrepareConfig(data=raw_dir, out=folder / "cache", size=48, workers=1))
        return folder / "cache"

    return made_once(tmp_path_factory, "prepared", prepare)


@pytest.fixture(scope="session")
def trained_run(prepared_dir, tmp_path_factory):
    """A tiny model trained for 4 epochs on the synthetic set."""
    from skinseg.training.loop import train

    return made_once(
        tmp_path_factory,
        "run",
        lambda folder: train(TrainConfig(data=prepared_dir, out=folder, epochs=4, device="cpu", lr=5e-3, **TINY)),
    )


@pytest.fixture(scope="session")
def tiny_model_path(trained_run) -> Path:
    return trained_run.run_dir / "best.safetensors"


# Tests that share something expensive that a worker makes once: the modules with a module-scoped fixture (the ONNX
# export, ~15 s of tracing; the official scorer's import, pandas and more, ~3 s)
# and the tests whose processes are forked from a server that has imported skinseg and torch
# (helpers.forked_processes). Under pytest-xdist each group goes to one worker as a whole, so that it is
# made once, not once per worker. (`--dist loadgroup` with xdist_group marks would say this, but with pytest 9.2 and
# pytest-xdist 3.8 it silently stops grouping: pytest-dev/pytest-xdist#1386.)
ONE_WORKER_MODULES = {"tests/test_export.py", "tests/test_scoring_parity.py"}
FORKED = "processes forked from one server"
ONE_WORKER_TESTS = {  # node id prefix: group
    "tests/test_reliability.py::test_kill_9_": FORKED,
    "tests/test_reliability.py::test_signals_during_": FORKED,
    "tests/test_train.py::test_two_process_gloo_run": FORKED,
}


def work_unit(nodeid: str) -> str:
    """The group a test is handed out with: its module, a named group, or the test alone."""
    module = nodeid.split("::", 1)[0]
    if module in ONE_WORKER_MODULES:
        return module
    return next((group for prefix, group in ONE_WORKER_TESTS.items() if nodeid.startswith(prefix)), nodeid)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """For the default `--dist load`: one test per work unit, except the groups above (one unit each). xdist hands
    out the units with the most tests first, then the rest in collection order."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LoadWithSharedGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return LoadWithSharedGroups(config, log)


# The longest single tests (several processes that each import torch), longest first.
LONGEST_FIRST = ("test_two_process_gloo_run", "test_signals_during_train", "test_kill_9_while")


def pytest_collection_modifyitems(config, items):
    """The `slow` tests first, the longest of them at the very front (a stable sort): with several workers, a long
    test handed out last runs alone."""

    def order(item) -> tuple[bool, int]:
        rank = next((i for i, name in enumerate(LONGEST_FIRST) if item.name.startswith(name)), len(LONGEST_FIRST))
        return item.get_closest_marker("slow") is None, rank

    items.sort(key=order)


def pytest_unconfigure(config):
    """At exit the interpreter's last garbage collections walk every object that torch and the tests have made:
    seconds at the end of each worker. Frozen, they are left to the OS (as skinseg.cli.main does)."""
    import gc

    gc.freeze()
