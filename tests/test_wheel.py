"""The release (issue #25): `python -m build` makes a wheel that carries the bundled model, and a fresh venv with
only that wheel (and CPU torch, as README installs it) runs `skinseg segment` on the samples, away from the
source tree. Minutes of installing, so deselected by default: README's test command runs it with -m wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from skinseg import __version__
from skinseg.data.images import load_mask

DISTRIBUTION = "skinseg-unet"  # the name on the package index; the import and the command stay `skinseg`
SOURCE_ONLY = shutil.ignore_patterns(
    ".git", ".venv*", "runs", "prepared", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".cache"
)


def run(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(list(map(str, args)), cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.wheel
def test_the_wheel_alone_segments_the_samples_with_the_bundled_model(tmp_path):
    source = tmp_path / "source"  # a copy: building writes egg-info and build folders beside the sources
    shutil.copytree(REPO, source, ignore=SOURCE_ONLY)
    run(sys.executable, "-m", "build", "--outdir", tmp_path / "dist", source, cwd=tmp_path)  # sdist, wheel from it
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"{DISTRIBUTION.replace('-', '_')}-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"{DISTRIBUTION.replace('-', '_')}-{__version__}.dist-info/METADATA").decode()
        entry_points = archive.read(f"{DISTRIBUTION.replace('-', '_')}-{__version__}.dist-info/entry_points.txt")
    assert "skinseg/assets/skinseg-isic2018.safetensors" in names
    assert "skinseg/assets/colour-pixels.safetensors" in names  # measure's learned white and red
    assert f"Name: {DISTRIBUTION}\n" in metadata and "skinseg = skinseg.cli:main" in entry_points.decode()
    assert not any(name.startswith(("tests/", "benchmarks/", "samples/")) for name in names)
    assert (
        any(name.endswith("/licenses/LICENSE") for name in names)
        and "License-Expression: MIT AND CC-BY-NC-4.0" in metadata
    )

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "pip", "install", "-q", "--no-compile", "torch==2.13.0", wheel, cwd=tmp_path)
    where = run(venv / "bin" / "python", "-c", "import skinseg; print(skinseg.__file__)", cwd=tmp_path).stdout
    assert "site-packages" in where  # the installed package, not the sources
    assert run(venv / "bin" / "skinseg", "--version", cwd=tmp_path).stdout.strip() == f"skinseg {__version__}"
    run(venv / "bin" / "skinseg", "segment", REPO / "samples" / "images", "-o", tmp_path / "masks", cwd=tmp_path)
    for truth_path in sorted((REPO / "samples" / "masks").glob("*.png")):
        truth, mask = load_mask(truth_path), load_mask(tmp_path / "masks" / truth_path.name)
        assert 2 * (truth & mask).sum() / (truth.sum() + mask.sum()) > 0.85  # the bundled model, not a stand-in
    assert np.all([(tmp_path / "masks" / p.name).exists() for p in (REPO / "samples" / "masks").glob("*.png")])
