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
