"""The library names settings as its config fields; the command line alone names them as flags (cli.flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from skinseg.cli.flags import flags_of, in_flags, options_of
from skinseg.errors import ConfigError
from skinseg.inference.config import MeasureConfig, SegmentConfig
from skinseg.inference.model_run import ModelRun
from skinseg.training.config import TrainConfig


def test_a_python_caller_reads_the_field_its_value_and_the_range():
    with pytest.raises(ConfigError, match=r"^`epochs` must be >= 1, got 0$"):
        TrainConfig(data=Path("d"), epochs=0)
    with pytest.raises(ConfigError, match=r"^`batch_size` must be >= 1, got 0$"):
        SegmentConfig(inputs=(), output=Path("m"), run=ModelRun(batch_size=0))


def test_the_command_line_names_its_own_flags():
    from skinseg.cli.measure import measure

    assert in_flags("`batch_size` must be >= 1, got 0") == "--batch-size must be >= 1, got 0"
    assert in_flags("`device=cuda` asked for (try `device=auto`)") == "--device cuda asked for (try --device auto)"
    assert in_flags("`postprocess=False` set how") == "--no-postprocess set how"
    assert in_flags("run `skinseg prepare --force`") == "run `skinseg prepare --force`"  # a command, not a setting
    assert in_flags("give `csv_file` or `report`") == "give --csv-file or --report"  # outside a command
    with flags_of(measure):
        assert in_flags("give `csv_file`, `json_file` or `report`") == "give --csv, --json or --report"
        with pytest.raises(ConfigError) as refused:
            MeasureConfig(
                inputs=(), masks=Path("m"), csv_file=Path("m.csv"), run=ModelRun(model=Path("x"), postprocess=False)
            )
        assert in_flags(str(refused.value)).startswith(
            "--model, --no-postprocess set how the model segments; with --masks"
        )


def test_every_command_s_options_are_read():
    from skinseg.cli import evaluate, export, measure, prepare, segment, train

    commands = [evaluate.evaluate, export.export, measure.measure, prepare.prepare, segment.segment, train.train]
    for command in commands:
        assert options_of(command)
    assert options_of(measure.measure)["csv_file"] == ("--csv", None)
    assert options_of(train.train)["out_dir"][0] == "--out"
