"""`skinseg train`: options -> TrainConfig (or a resumed run's, load_run) -> train."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skinseg.cli.base import DeviceOption, console, heavy_imports, out, report_errors
from skinseg.cli.flags import in_flags
from skinseg.cli.tables import literal
from skinseg.training.config import DEFAULT_PRESET, choices_text, default_text, default_value, preset_text

# The options of `train` that are not settings of the run (the others go to train_config or load_run by name).
COMMAND_ONLY = ("data", "out_dir", "overwrite", "preset", "resume", "time_budget")


@report_errors
def train(
    data: Annotated[
        list[str] | None,
        typer.Option(
            metavar="<folder>",
            help="A prepared folder, or a raw folder (prepared on the fly); required, except with --resume. Repeat it"
            " to train on several data sets together, each a share of every epoch: equal shares, or DIR:WEIGHT"
            " (e.g. --data isic:1 --data ham:0.5).",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Run folder for weights, metrics and plots; one holding a run needs --resume or --overwrite"
            f" {default_text('out')}.",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in --out (its files are removed when the new run starts).")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            help=f"A recipe ('seed': the course project's). {preset_text()}. Explicit options win"
            f" [default: {DEFAULT_PRESET}]."
        ),
    ] = None,
    size: Annotated[
        int | None, typer.Option(help=f"Image size when --data is a raw folder {default_text('size')}.")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(help=f"Epochs {default_text('epochs')}. With --resume: a new total for the run.")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Train for this long instead of --epochs (2h, 90m, 1h30m): the schedule spans the budget and the"
            " run stops cleanly when it is spent. With --resume: a new total for the run."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help=f"Batch size {default_text('batch_size')}.")] = None,
    lr: Annotated[float | None, typer.Option(help=f"Peak learning rate {default_text('lr')}.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help=f"Weight decay {default_text('weight_decay')}.")] = None,
    optimizer: Annotated[
        str | None, typer.Option(help=f"{choices_text('optimizer')} {default_text('optimizer')}.")
    ] = None,
    schedule: Annotated[
        str | None, typer.Option(help=f"{choices_text('schedule')} {default_text('schedule')}.")
    ] = None,
    warmup_epochs: Annotated[
        float | None, typer.Option(help=f"Linear warm-up epochs {default_text('warmup_epochs')}.")
    ] = None,
    loss: Annotated[str | None, typer.Option(help=f"{choices_text('loss')} {default_text('loss')}.")] = None,
    augment: Annotated[
        bool | None, typer.Option(help=f"Flips, rotations, scale, colour and gamma jitter {default_text('augment')}.")
    ] = None,
    architecture: Annotated[
        str | None, typer.Option(help=f"{choices_text('architecture')} {default_text('architecture')}.")
    ] = None,
    base_filters: Annotated[
        int | None, typer.Option(help=f"Filters of the first level {default_text('base_filters')}.")
    ] = None,
    depth: Annotated[int | None, typer.Option(help=f"Encoder levels {default_text('depth')}.")] = None,
    dropout: Annotated[
        float | None, typer.Option(help=f"Dropout in context modules {default_text('dropout')}.")
    ] = None,
    segmentation_levels: Annotated[
        int | None,
        typer.Option(
            help="Decoder levels whose segmentation heads are summed (deep supervision)"
            f" {default_text('segmentation_levels')}."
        ),
    ] = None,
    ema: Annotated[
        float | None,
        typer.Option(
            help="Keep an exponential moving average of the weights with this decay (e.g. 0.999) and validate and"
            f" save the average; 0: off {default_text('ema')}."
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            help="Stop after this many epochs without a better validation Dice (training Dice where there is no"
            f" validation split; 0: never) {default_text('patience')}."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help=f"Seed of initialisation, shuffling and augmentation {default_text('seed')}.")
    ] = None,
    split_seed: Annotated[
        int | None,
        typer.Option(
            help=f"Seed of the train/val/test split when --data is a raw folder {default_text('split_seed')}."
        ),
    ] = None,
    max_train_images: Annotated[
        int | None,
        typer.Option(help=f"Use at most this many training images (0: all) {default_text('max_train_images')}."),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16"
            f" {default_text('precision')[:-1]}; with --resume: the run's]."
        ),
    ] = None,
    channels_last: Annotated[
        bool | None,
        typer.Option(
            help="channels_last memory layout [default: where it measured faster for this hardware and size]."
        ),
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(
            help=f"torch.compile the model (CUDA and CPU; the first epoch is slower) {default_text('compile')}."
        ),
    ] = None,
    device: DeviceOption = "auto",
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Continue the run in this folder (interrupted, or finished: --epochs or --time-budget give it a new"
            " total); its other settings are kept."
        ),
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from these weights instead of random ones: a skinseg"
            " .safetensors file, or 'bundled' (fine-tuning)."
        ),
    ] = None,
) -> None:
    """Train the improved UNet; writes best/last weights (.safetensors), metrics.csv and curves.png."""
    options = {name: value for name, value in locals().items() if name not in COMMAND_ONLY}  # None: not given
    with heavy_imports():
        from skinseg.cli.tables import training_summary
        from skinseg.errors import SkinsegError
        from skinseg.runtime.distributed import is_main_process
        from skinseg.training.config import parse_duration, train_config
        from skinseg.training.runs import load_run, refuse_resume_with_overwrite, run_folder

    options["time_budget"] = parse_duration(time_budget) if time_budget is not None else None
    if resume:
        refuse_resume_with_overwrite(resume, overwrite)  # before the run is read
        config = load_run(resume, data=data, out=out_dir, preset=preset, **options)
    else:
        if not data:
            raise SkinsegError("give --data: a prepared or raw data set (repeat it for several), or --resume RUN")
        out_dir = out_dir or default_value("out")
        config = train_config(data, preset or DEFAULT_PRESET, out=out_dir, **options)  # every setting checked first
    # Then the files, before any data is prepared or loaded; a second train into this run is refused at once.
    with run_folder(config, overwrite, writer=is_main_process()):
        result = _train(config)
    if not result.is_main:
        return
    if result.history:
        out.print(training_summary(result))
    stop = " (stopped early)" if result.stopped_early else ""
    selected_on = "training" if result.selected_on == "train_dice" else "validation"
    out.print(
        f"best {selected_on} Dice {result.best_dice:.4f} at epoch {result.best_epoch}{stop}; "
        f"weights in {literal(str(result.run_dir / 'best.safetensors'))}",
        soft_wrap=True,
        highlight=False,
    )


def _train(config):
    """The run, with its start-up line and notes, and its progress on the terminal."""
    from skinseg.cli.progress import training_display
    from skinseg.cli.tables import print_notes
    from skinseg.training.loop import train as run_training
    from skinseg.training.runs import first_epoch

    def on_start(line: str, notes: list[str]) -> None:
        console.print(in_flags(line), highlight=False, soft_wrap=True)
        print_notes(console, notes)

    epochs = None if config.time_budget else config.epochs
    with training_display(console, epochs, first_epoch(config)) as (on_step, on_epoch):
        return run_training(config, on_epoch=on_epoch, on_step=on_step, on_start=on_start)
