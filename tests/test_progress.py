import io

from rich.console import Console

import skinseg.cli.progress as progress


def test_a_log_file_gets_a_progress_line_where_a_terminal_gets_a_bar(monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    log = io.StringIO()
    with progress.training_display(Console(file=log, force_terminal=False, width=200), None) as (on_step, on_epoch):
        on_step(3, 10, 0.5, 0.75)
        row = dict(epoch=1, train_loss=0.5, train_dice=0.75, val_loss=0.4, val_dice=0.8, val_accuracy=0.9, lr=1e-3)
        on_epoch(row | {"seconds": 12.0, "val_dice_isic": 0.81, "val_dice_ham": 0.79})
    lines = log.getvalue().splitlines()
    assert "epoch 1 step 3/10  loss 0.5000  Dice 0.7500" in lines
    assert any(line.startswith("epoch   1") and line.endswith("isic 0.8100  ham 0.7900") for line in lines)


def test_a_resumed_run_shows_the_epoch_it_goes_on_with(monkeypatch):
    """A run resumed after epoch 4 showed its steps as `epoch 1`."""
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    log = io.StringIO()
    with progress.training_display(Console(file=log, force_terminal=False, width=200), None, 5) as (on_step, _):
        on_step(3, 10, 0.5, 0.75)
    assert "epoch 5 step 3/10  loss 0.5000  Dice 0.7500" in log.getvalue().splitlines()


def test_the_bar_ends_full_on_the_last_epoch():
    """Issue #33, case 17: the training bar ended at "epoch 2/2 ... 0/2"."""
    console = Console(file=io.StringIO(), force_terminal=True, width=200)
    with progress.training_display(console, 2) as (on_step, on_epoch):
        row = dict(train_loss=0.5, train_dice=0.75, val_loss=0.4, val_dice=0.8, val_accuracy=0.9, lr=1e-3, seconds=1.0)
        for epoch in (1, 2):
            on_step(1, 2, 0.5, 0.75)
            on_step(2, 2, 0.5, 0.75)
            on_epoch(row | {"epoch": epoch})
    last = console.file.getvalue().split("\r")[-1]
    assert "epoch 2/2" in last and "2/2" in last.split("epoch 2/2", 1)[1] and "0/2" not in last


def test_prepares_table_folds_a_long_path_instead_of_cutting_it():
    """Issue #33, case 17: prepare's table cut long paths with an ellipsis."""
    from types import SimpleNamespace

    from skinseg.cli.tables import prepare_summary

    path = "/data/" + "/".join(f"folder{i:02d}" for i in range(20)) + "/ISIC_0000001.jpg"
    result = SimpleNamespace(
        out_dir="prepared/x",
        reused=False,
        layout="isic",
        count=1,
        split_sizes={"train": 1},
        groups=None,
        skipped=[(path, "mask has 3 grey levels, expected 2 (a binary mask)")],
        seconds=1.0,
    )
    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    console.print(prepare_summary(result))
    shown = console.file.getvalue()
    assert "…" not in shown
    item_column = "".join(line.split("│")[1].strip() for line in shown.splitlines() if line.count("│") == 3)
    assert path in item_column
