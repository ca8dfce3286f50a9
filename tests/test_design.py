"""The design holds: the layers of docs/architecture.md (import-linter's contract, checked by `lint-imports` in
README's test command) name every part of the package, no module imports itself in a circle, and modules and
functions stay short enough to read in one sitting."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "skinseg"
MAX_MODULE_LINES = 400
MAX_BODY_LINES = 60

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _contracts() -> list[dict]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _contract() -> dict:
    (contract,) = [contract for contract in _contracts() if contract["type"] == "layers"]
    return contract


def _layer_names() -> list[list[str]]:
    return [[name.strip() for name in re.split(r"[|:]", layer)] for layer in _contract()["layers"]]


def test_the_layers_name_every_part_of_the_package_and_ignore_no_import():
    contract = _contract()
    assert contract["type"] == "layers" and "ignore_imports" not in contract
    named = {name for layer in _layer_names() for name in layer}
    parts = {
        f"skinseg.{path.stem}"
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and path.stem not in ("__init__", "__main__"))
        or (path.is_dir() and (path / "__init__.py").exists())
    }
    assert parts == named


def test_the_library_may_not_import_rich_or_typer():
    """Only skinseg.cli draws on a terminal: the library reports through callbacks (import-linter checks it)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["include_external_packages"] is True
    (forbidden,) = [contract for contract in _contracts() if contract["type"] == "forbidden"]
    assert set(forbidden["forbidden_modules"]) == {"rich", "typer"}
    library = ("data", "models", "measurement", "training", "inference", "evaluation", "runtime")
    assert set(forbidden["source_modules"]) >= {f"skinseg.{name}" for name in library}
    assert "ignore_imports" not in forbidden


def test_the_architecture_page_shows_the_contracts_layers():
    """docs/architecture.md draws the layers as a list, top to bottom, one line a layer."""
    page = (REPO / "docs" / "architecture.md").read_text()
    drawn = re.search(r"```text\nlayers.*?\n(.*?)```", page, re.S)
    assert drawn, "docs/architecture.md has no ```text block starting with 'layers'"
    rows = [re.findall(r"skinseg\.\w+", line) for line in drawn.group(1).splitlines()]
    assert [row for row in rows if row] == _layer_names()


def test_no_module_imports_itself_in_a_circle():
    grimp = pytest.importorskip("grimp")
    graph = grimp.build_graph("skinseg")
    for importer in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported.startswith(f"{importer}.") or importer.startswith(f"{imported}."):
                continue  # a package and its own modules (__init__ re-exports)
            chain = graph.find_shortest_chain(importer=imported, imported=importer)
            assert chain is None, f"import circle: {importer} -> {' -> '.join(chain or [])}"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_is_short_enough_to_read_in_one_sitting(path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(REPO)}: {lines} lines"


def body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """A function's lines without its signature and docstring: from its first statement to its end."""
    body = function.body
    if (
        len(body) > 1
        and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant)
        and isinstance(body[0].value.value, str)
    ):
        body = body[1:]
    return function.end_lineno - body[0].lineno + 1  # type: ignore[operator]


def test_body_lines_leave_out_the_signature_and_the_docstring():
    source = 'def f(\n    a,\n    b,\n):\n    """Doc\n\n    more."""\n    x = 1\n\n    return x\n'
    (function,) = ast.parse(source).body
    assert isinstance(function, ast.FunctionDef) and body_lines(function) == 3


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_function_body_is_over_sixty_lines(path):
    tree = ast.parse(path.read_text())
    long = [
        f"{node.name} (line {node.lineno}): {body_lines(node)} lines"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and body_lines(node) > MAX_BODY_LINES
    ]
    assert not long, f"{path.relative_to(REPO)}: {', '.join(long)}"
