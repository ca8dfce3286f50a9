"""The command line: thin Typer commands that build a config and call a library function.

Nothing heavy is imported at module level, so `skinseg --help` and `--version` never load torch.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand

from skinseg import __version__


class _Command(TyperCommand):
    """Arguments with a metavar are shown by it alone, in the usage line and the help: Typer would add braces
    and their Python type (`{inputs}...`, `<list[Path]>`)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.get_usage_pieces = lambda ctx, name=param.metavar: [name]  # type: ignore[method-assign,misc]
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        return params


app = typer.Typer(
    name="skinseg",
    help="Skin-lesion segmentation in dermoscopy images with the improved UNet.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
console = Console(stderr=True)
out = Console()

DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]
PrecisionOption = Annotated[
    str, typer.Option(help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16.")
]

ReportOption = Annotated[
    Path | None, typer.Option("--report", help="Write an HTML page of the results (self-contained, worst first).")
]
ReportMaxCasesOption = Annotated[
    int,
    typer.Option(
        min=0, metavar="<int>", help="Rows with an image in the --report page (about 15 kB each); the rest summarised."
    ),
]


def _ignore_further_interrupts() -> None:
    """The interrupt is handled and the command is ending: a repeated Ctrl-C must not cut the exit short."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def _report_errors(command: Callable) -> Callable:
    """Package errors and OSErrors become one red line and exit code 1; Ctrl-C exits with 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from skinseg.errors import SkinsegError, TrainingInterrupted

        try:
            return command(*args, **kwargs)
        except SkinsegError as exc:
            interrupted = isinstance(exc, TrainingInterrupted)
            if interrupted:
                _ignore_further_interrupts()
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(130 if interrupted else 1) from None
        except OSError as exc:  # one not caught where the file is written: still one line, with the path
            where = f"{exc.filename}: " if exc.filename else ""
            console.print(
                f"[bold red]error:[/] {escape(where + (exc.strerror or str(exc)))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            _ignore_further_interrupts()
            console.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        out.print(f"skinseg {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """Skin-lesion segmentation in dermoscopy images with the improved UNet."""


@app.command()
@_report_errors
def prepare(
    data: Annotated[
        Path,
        typer.Option(
            help="Raw data: a folder (images/ + masks/, ISIC 2016-2018, HAM10000 or PH2 layout) or a .zip file."
        ),
    ],
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Cache folder [default: prepared/<name>-<size>].")
    ] = None,
    size: Annotated[int, typer.Option(help="Side of the square images and masks stored.")] = 256,
    layout: Annotated[str, typer.Option(help="auto, isic2018, isic2017, isic2016, ham10000, ph2 or generic.")] = "auto",
    mask_suffix: Annotated[
        str | None,
        typer.Option(help="What a mask's file name adds to its image's (e.g. _segmentation) [default: by layout]."),
    ] = None,
    split: Annotated[str, typer.Option(help="Train/val/test fractions.")] = "60/20/20",
    seed: Annotated[int, typer.Option(help="Seed of the split (stable per image id).")] = 0,
    split_file: Annotated[Path | None, typer.Option(help="A given split: JSON or CSV of id -> train/val/test.")] = None,
    group_by: Annotated[
        str | None,
        typer.Option(
            help="FILE.csv:COLUMN: images with one value of COLUMN share a split (e.g. a lesion's images);"
            " 'none' to turn off [default: the layout's, HAM10000_metadata.csv:lesion_id]."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first bad file instead of skipping it.")] = False,
    force: Annotated[bool, typer.Option(help="Rebuild even if the cache is up to date.")] = False,
    workers: Annotated[int, typer.Option(help="Decoding processes (0: one per core).")] = 0,
) -> None:
    """Find image/mask pairs, check them, resize, cache and split 60/20/20."""
    from skinseg.config import PrepareConfig
    from skinseg.data.prepare import prepare_dataset
    from skinseg.data.splits import parse_fractions
    from skinseg.progress import progress_bar
    from skinseg.reports import prepare_summary

    target = out_dir or Path("prepared") / f"{data.resolve().name.removesuffix('.zip')}-{size}"
    config = PrepareConfig(
        data=data,
        out=target,
        size=size,
        layout=layout,
        mask_suffix=mask_suffix,
        split=parse_fractions(split),
        seed=seed,
        split_file=split_file,
        group_by=group_by,
        strict=strict,
        force=force,
        workers=workers,
    )
    with progress_bar(console, "Preparing") as advance:
        result = prepare_dataset(config, progress=advance)
    out.print(prepare_summary(result))


@app.command()
@_report_errors
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
            " [default: runs/skinseg].",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run in --out (its files are removed when the new run starts).")
    ] = False,
    preset: Annotated[
        str | None,
        typer.Option(
            help="default, or 'seed': the course project's recipe (Adam 1e-4, Dice "
            "loss, batch 16, 10 epochs, no augmentation). Explicit options win [default: default]."
        ),
    ] = None,
    size: Annotated[int | None, typer.Option(help="Image size when --data is a raw folder [default: 256].")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs [default: 40; seed: 10]. With --resume: a new total for the run.")
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            help="Train for this long instead of --epochs (2h, 90m, 1h30m): the schedule spans the budget and the"
            " run stops cleanly when it is spent. With --resume: a new total for the run."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [default: 16].")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate [default: 2e-3; seed: 1e-4].")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay [default: 1e-4].")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adamw, adam or sgd [default: adamw].")] = None,
    schedule: Annotated[str | None, typer.Option(help="cosine, constant or poly [default: cosine].")] = None,
    warmup_epochs: Annotated[float | None, typer.Option(help="Linear warm-up epochs [default: 1].")] = None,
    loss: Annotated[str | None, typer.Option(help="dice_bce, dice or bce [default: dice_bce].")] = None,
    augment: Annotated[
        bool | None, typer.Option(help="Flips, rotations, scale, colour and gamma jitter [default: on].")
    ] = None,
    architecture: Annotated[
        str | None, typer.Option(help="improved_unet, or unet (a plain UNet baseline) [default: improved_unet].")
    ] = None,
    base_filters: Annotated[int | None, typer.Option(help="Filters of the first level [default: 16].")] = None,
    depth: Annotated[int | None, typer.Option(help="Encoder levels [default: 5].")] = None,
    dropout: Annotated[float | None, typer.Option(help="Dropout in context modules [default: 0.3].")] = None,
    segmentation_levels: Annotated[
        int | None,
        typer.Option(help="Decoder levels whose segmentation heads are summed (deep supervision) [default: 3]."),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(help="Stop after this many epochs without a better validation Dice (0: never) [default: 0]."),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of initialisation, shuffling and augmentation [default: 0].")
    ] = None,
    split_seed: Annotated[
        int | None, typer.Option(help="Seed of the train/val/test split when --data is a raw folder [default: 0].")
    ] = None,
    max_train_images: Annotated[
        int | None, typer.Option(help="Use at most this many training images (0: all).")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16 [default: auto; with"
            " --resume: the run's]."
        ),
    ] = None,
    channels_last: Annotated[
        bool | None, typer.Option(help="channels_last memory layout [default: with bf16].")
    ] = None,
    compile: Annotated[
        bool | None,
        typer.Option(help="torch.compile the model (CUDA and CPU; the first epoch is slower) [default: off]."),
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
    from skinseg.config import parse_duration, train_config
    from skinseg.distributed import is_main_process
    from skinseg.errors import SkinsegError
    from skinseg.progress import training_display
    from skinseg.reports import print_notes
    from skinseg.train import check_run_folder, clear_run_folder, resume_config, startup_notes
    from skinseg.train import train as run_training

    options = dict(  # None: not given
        size=size,
        epochs=epochs,
        time_budget=parse_duration(time_budget) if time_budget else None,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        optimizer=optimizer,
        schedule=schedule,
        warmup_epochs=warmup_epochs,
        loss=loss,
        augment=augment,
        architecture=architecture,
        base_filters=base_filters,
        depth=depth,
        dropout=dropout,
        segmentation_levels=segmentation_levels,
        patience=patience,
        seed=seed,
        split_seed=split_seed,
        max_train_images=max_train_images,
        precision=precision,
        channels_last=channels_last,
        compile=compile,
        device=device,
        init=init,
    )
    if resume:
        if overwrite:
            raise SkinsegError("--resume continues a run and --overwrite replaces it: give one of them")
        config = resume_config(resume, data=data, out=out_dir, preset=preset, **options)
    else:
        if not data:
            raise SkinsegError("give --data: a prepared or raw data set (repeat it for several), or --resume RUN")
        out_dir = out_dir or Path("runs/skinseg")
        check_run_folder(out_dir, overwrite)  # before any data is prepared or loaded
        config = train_config(data, preset or "default", out=out_dir, **options)
        if overwrite and is_main_process():
            clear_run_folder(out_dir)
    if is_main_process():
        line, notes = startup_notes(config)
        console.print(line, highlight=False, soft_wrap=True)
        print_notes(console, notes)
    with training_display(console, None if config.time_budget else config.epochs) as (on_step, on_epoch):
        result = run_training(config, on_epoch=on_epoch, on_step=on_step)
    if not result.is_main:
        return
    if result.history:
        from skinseg.reports import training_summary

        out.print(training_summary(result))
    stop = " (stopped early)" if result.stopped_early else ""
    selected_on = (
        "training" if result.history and result.history[-1].get("selected_on") == "train_dice" else "validation"
    )
    out.print(
        f"best {selected_on} Dice {result.best_val_dice:.4f} at epoch {result.best_epoch}{stop}; "
        f"weights in {result.run_dir / 'best.safetensors'}"
    )


@app.command()
@_report_errors
def evaluate(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="<folder>",
            help="A prepared dataset (its test split by default) or a raw folder with masks; repeat it to score"
            " several data sets, each on its own row.",
        ),
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model weights [default: the bundled model].")] = None,
    split: Annotated[str, typer.Option(help="train, val, test or all (prepared data only).")] = "test",
    pred: Annotated[Path | None, typer.Option(help="Folder of predicted masks to score (with --truth).")] = None,
    truth: Annotated[Path | None, typer.Option(help="Folder of ground-truth masks (with --pred).")] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the report as JSON.")] = None,
    csv_file: Annotated[Path | None, typer.Option("--csv", help="Write per-image metrics as CSV.")] = None,
    figures: Annotated[
        Path | None, typer.Option(help="Folder for best/median/worst grids and a Dice histogram.")
    ] = None,
    threshold: Annotated[float | None, typer.Option(help="Probability threshold [default: the model's].")] = None,
    tta: Annotated[bool, typer.Option(help="Average the predictions of the image and its flips.")] = False,
    postprocess: Annotated[
        bool, typer.Option(help="Keep the largest lesion and fill its holes (measured to help on ISIC 2018).")
    ] = True,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 16,
    split_seed: Annotated[
        int, typer.Option(help="When --data is a raw folder: the seed it is split with (as `train --split-seed`).")
    ] = 0,
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    html: ReportOption = None,
    report_max_cases: ReportMaxCasesOption = 500,
    overwrite: Annotated[
        bool, typer.Option(help="Replace existing output files (--json, --csv, --figures, --report).")
    ] = False,
) -> None:
    """Score a model (or a folder of masks) with the ISIC challenge metrics."""
    from skinseg.config import EvaluateConfig
    from skinseg.errors import SkinsegError
    from skinseg.evaluate import (
        check_report_paths,
        data_set_name,
        evaluate_folders,
        evaluate_model,
        html_page_path,
        write_reports,
    )
    from skinseg.fileio import refuse_existing
    from skinseg.html_report import ReportCases
    from skinseg.reports import metrics_table, print_notes, sets_table

    if pred is not None or truth is not None:
        if pred is None or truth is None:
            raise SkinsegError("--pred and --truth go together")
        if data or model is not None:
            raise SkinsegError("--pred/--truth score masks already made: --data and --model do not apply to them")
        check_report_paths(json_file, csv_file, figures, [pred.name], [pred, truth], overwrite)
        if html:
            refuse_existing(html, overwrite)  # before the scoring, not after it
        reports = [evaluate_folders(pred, truth, ReportCases(report_max_cases) if html else None)]
    else:
        if not data:
            raise SkinsegError("give --data (a prepared or raw dataset), or --pred with --truth")
        names = [data_set_name(d) for d in data]
        if len(set(names)) < len(names):
            raise SkinsegError(f"two --data sets have one name ({', '.join(names)}); each set needs its own")
        check_report_paths(json_file, csv_file, figures, names, [*data, *([model] if model else [])], overwrite)
        if html:
            for name in names:
                refuse_existing(html_page_path(html, name, len(names) > 1), overwrite)  # before the scoring
        config = EvaluateConfig(
            model=model,
            data=data[0],
            split=split,
            device=device,
            batch_size=batch_size,
            threshold=threshold,
            tta=tta,
            postprocess=postprocess,
            precision=precision,
            split_seed=split_seed,
        )
        reports = [
            evaluate_model(
                dataclasses.replace(config, data=d),
                console=console,
                cases=ReportCases(report_max_cases) if html else None,
            )
            for d in data
        ]
    write_reports(reports, json_file=json_file, csv_file=csv_file, figures=figures, html_file=html, overwrite=overwrite)
    for report in reports:
        out.print(metrics_table(report))
        if unmatched := report.unmatched_predictions:
            print_notes(
                console, [f"{len(unmatched)} prediction(s) have no true mask, not scored (first: {unmatched[0]})"]
            )
    if len(reports) > 1:
        out.print(sets_table(reports))
    if html:
        for page in (html_page_path(html, r.name, len(reports) > 1) for r in reports):
            out.print(f"wrote {page} ({page.stat().st_size / 1e6:.1f} MB)", soft_wrap=True, highlight=False)


@app.command(cls=_Command)
@_report_errors
def segment(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="IMAGES...", help="Image files, folders or glob patterns.", show_default=False),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Mask file for one input, folder for many.")],
    model: Annotated[Path | None, typer.Option(help="Model weights [default: the bundled model].")] = None,
    threshold: Annotated[float | None, typer.Option(help="Probability threshold [default: the model's].")] = None,
    overlay: Annotated[
        bool, typer.Option(help="Also write the image with the lesion outline (<stem>_overlay.png).")
    ] = False,
    probabilities: Annotated[
        bool, typer.Option(help="Also write the probability map (<stem>_probability.png, 0-255).")
    ] = False,
    tta: Annotated[bool, typer.Option(help="Average the predictions of the image and its flips.")] = False,
    postprocess: Annotated[
        bool, typer.Option(help="Keep the largest lesion and fill its holes (measured to help on ISIC 2018).")
    ] = True,
    summary: Annotated[
        Path | None,
        typer.Option(
            help="Per-image .csv or .json: lesion area, bounding box, mean probability, time (written as each"
            " image is done)."
        ),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing output files.")] = False,
    skip_existing: Annotated[
        bool, typer.Option(help="Leave the images whose outputs exist (counted, not failures): resume a batch.")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 8,
    backend: Annotated[
        str,
        typer.Option(
            help="torch, or onnx (ONNX Runtime on the CPU; needs skinseg[onnx]; a "
            ".safetensors model is exported once into the cache)."
        ),
    ] = "torch",
    precision: PrecisionOption = "auto",
    device: DeviceOption = "auto",
    report: ReportOption = None,
    report_max_cases: ReportMaxCasesOption = 500,
) -> None:
    """Segment images; writes 0/255 PNG masks the size of each input."""
    from skinseg.config import SegmentConfig
    from skinseg.inputs import collect_inputs, output_paths

    config = SegmentConfig(
        inputs=tuple(inputs),
        output=output,
        model=model,
        threshold=threshold,
        device=device,
        batch_size=batch_size,
        overwrite=overwrite,
        skip_existing=skip_existing,
        overlay=overlay,
        probabilities=probabilities,
        tta=tta,
        postprocess=postprocess,
        summary=summary,
        backend=backend,
        precision=precision,
        report=report,
        report_max_cases=report_max_cases,
    )
    output_paths(collect_inputs(config.inputs), config.output)  # a wrong path is reported before torch is imported
    from skinseg.inference import segment_paths

    result = segment_paths(config, console=console)
    if result.ignored:
        first = escape(str(result.ignored[0]))
        console.print(
            f"left out {len(result.ignored)} mask file(s) found in the input folder(s)"
            f" (names ending _segmentation, _mask, _lesion, _overlay or _probability; first: {first})",
            highlight=False,
            soft_wrap=True,
        )
    existing = f"; {len(result.existing)} already there (skipped)" if result.existing else ""
    failed = f"; {len(result.failed)} failed" if result.failed else ""
    out.print(
        f"wrote {len(result.written)} mask(s) to {result.output}{existing}{failed}", soft_wrap=True, highlight=False
    )
    _report_skipped(result.failed)
    if result.failed:
        raise typer.Exit(1)


def _report_skipped(skipped: list, shown: int = 20) -> None:
    """One line per skipped file, the first `shown` of them."""
    for path, reason in skipped[:shown]:
        console.print(f"[yellow]skipped[/] {escape(str(path))}: {escape(reason)}", highlight=False, soft_wrap=True)
    if len(skipped) > shown:
        console.print(f"... and {len(skipped) - shown} more", highlight=False)


@app.command(cls=_Command)
@_report_errors
def export(
    model: Annotated[
        Path | None, typer.Argument(metavar="[MODEL]", help="Weights file [default: the bundled model].")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The .onnx file to write.")] = Path("skinseg.onnx"),
    format: Annotated[str, typer.Option(help="onnx (the only format).")] = "onnx",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Export the model as ONNX (dynamic batch and image size, metadata included)."""
    from skinseg.errors import SkinsegError
    from skinseg.export import export_onnx

    if format != "onnx":
        raise SkinsegError(f"unknown export format '{format}'; only onnx is supported")
    out.print(f"wrote {export_onnx(model, output, overwrite=overwrite)}", soft_wrap=True, highlight=False)


def main() -> None:
    # Ctrl-C and SIGTERM end a command alike: temporary files are removed, training state is kept, exit 130.
    from skinseg.fileio import raise_interrupt

    signal.signal(signal.SIGINT, raise_interrupt)
    signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        app(prog_name="skinseg")
    finally:
        # At exit the interpreter's last garbage collections walk every object that torch has made: most of a
        # second per command. Frozen, they are left to the OS, which frees the process's memory anyway.
        gc.freeze()


if __name__ == "__main__":
    main()
