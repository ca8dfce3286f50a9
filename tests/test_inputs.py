import os
from pathlib import Path

import pytest

from skinseg.errors import SkinsegError
from skinseg.inputs import collect_inputs, one_input_per_mask, output_paths, real_path


def test_inputs_from_globs_and_missing_paths(tmp_path):
    (tmp_path / "x1.png").touch()
    (tmp_path / "x2.png").touch()
    assert [p.name for p in collect_inputs([tmp_path / "x*.png"])] == ["x1.png", "x2.png"]
    with pytest.raises(SkinsegError, match="input not found"):
        collect_inputs([tmp_path / "missing.png"])
    with pytest.raises(SkinsegError, match="no images found"):
        collect_inputs([tmp_path / "*.tif"])


def test_output_paths_for_many_inputs_go_to_a_folder(tmp_path):
    targets = output_paths([tmp_path / "a.jpg", tmp_path / "b.png"], tmp_path / "out")
    assert [t.name for t in targets] == ["a_segmentation.png", "b_segmentation.png"]
    inputs = [tmp_path / "a.jpg", tmp_path / "sub" / "a.png", tmp_path / "b.png"]
    kept, skipped = one_input_per_mask(list(zip(inputs, output_paths(inputs, tmp_path / "out"), strict=True)))
    assert [source.name for source, _ in kept] == ["a.jpg", "b.png"]
    assert skipped == [(inputs[1], f"its mask a_segmentation.png is {inputs[0]}'s: rename one to segment both")]


def test_a_folder_gives_its_images_without_masks_and_hidden_files(tmp_path):
    for name in ("b.png", "a.JPG", ".hidden.png", "a_segmentation.png", "a_overlay.png", "notes.txt"):
        (tmp_path / name).touch()
    (tmp_path / "folder.png").mkdir()
    ignored: list = []
    assert [p.name for p in collect_inputs([tmp_path], ignored)] == ["a.JPG", "b.png"]
    assert sorted(p.name for p in ignored) == ["a_overlay.png", "a_segmentation.png"]


def test_a_file_named_twice_is_one_input(tmp_path, monkeypatch):
    """Issue #21: `segment DIR $PWD/DIR` said that two inputs would write the same mask."""
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.png").touch()
    (tmp_path / "link").symlink_to(tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    named = [Path("d"), tmp_path / "d", Path("d/../d/a.png"), Path("link")]
    assert collect_inputs(named) == [Path("d/a.png")]
    assert [t.name for t in output_paths(collect_inputs(named), tmp_path / "out")] == ["a_segmentation.png"]


def test_real_path_agrees_with_realpath_on_links_loops_and_parents(tmp_path, monkeypatch):
    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "a.png").touch()
    (tmp_path / "linked").symlink_to(tmp_path / "data", target_is_directory=True)
    (tmp_path / "data" / "b.png").symlink_to(tmp_path / "data" / "a.png")
    (tmp_path / "data" / "loop.png").symlink_to(tmp_path / "data" / "loop.png")
    monkeypatch.chdir(tmp_path / "data" / "sub")
    paths = [
        tmp_path / "data" / "a.png",
        tmp_path / "linked" / "a.png",  # through a linked folder
        tmp_path / "data" / "b.png",  # a link to a file
        tmp_path / "data" / "loop.png",  # a link to itself
        tmp_path / "data" / "missing.png",
        tmp_path / "linked" / "sub" / ".." / "a.png",  # .. after a linked folder
        "../a.png",  # relative, from the working folder
        "x.png",
        tmp_path / "data" / "sub" / "..",
    ]
    folders: dict[str, str] = {}
    for path in paths:
        assert real_path(path, folders) == os.path.realpath(path), path


def test_one_image_to_a_name_with_another_suffix_is_refused_not_made_a_folder(tmp_path):
    """Issue #21: `-o x.npy` for one input made a folder x.npy."""
    with pytest.raises(SkinsegError, match=r"a mask is written as \.png, \.tif or \.bmp, not \.npy"):
        output_paths([tmp_path / "a.jpg"], tmp_path / "x.npy")
    assert not (tmp_path / "x.npy").exists()
    (tmp_path / "out.v2").mkdir()
    assert output_paths([tmp_path / "a.jpg"], tmp_path / "out.v2") == [tmp_path / "out.v2" / "a_segmentation.png"]


def test_webp_and_gif_are_taken_from_folders_as_by_name(tmp_path):
    """Issue #21: GIF and WebP images were accepted by name but left out of folders without a word."""
    for name in ("a.webp", "b.gif", "c.png"):
        (tmp_path / name).touch()
    assert [p.name for p in collect_inputs([tmp_path])] == ["a.webp", "b.gif", "c.png"]


def test_a_glob_leaves_out_masks_and_segments_own_outputs_like_a_folder(tmp_path):
    """#21's trial: `segment 'DIR/*.png' -o DIR` run twice took its own masks as images to segment."""
    for name in ("a.png", "a_segmentation.png", "a_overlay.png", "b_mask.png"):
        (tmp_path / name).write_bytes(b"")
    ignored: list[Path] = []
    assert collect_inputs([tmp_path / "*.png"], ignored) == [tmp_path / "a.png"]
    assert len(ignored) == 3
    named: list[Path] = []
    named_itself = collect_inputs([tmp_path / "a_segmentation.png", tmp_path / "a.png"], named_like_outputs=named)
    assert named_itself == [tmp_path / "a_segmentation.png", tmp_path / "a.png"] and named == named_itself[:1]
    collect_inputs([tmp_path / "*.png", tmp_path], named_like_outputs=named)
    assert named == named_itself[:1]  # a pattern and a folder leave such files out
    twice: list[Path] = []
    collect_inputs([tmp_path / "a_segmentation.png", tmp_path / "a_segmentation.png"], named_like_outputs=twice)
    assert twice == [tmp_path / "a_segmentation.png"]  # one input, named once
