"""Rich tables for what the commands print."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from skinseg.cli.flags import in_flags


def literal(text: str) -> str:
    """Text printed as it is: no Rich markup taken from it, and no line break in it (a file name with a newline
    cannot forge a line of the tool's own)."""
    return escape(text).replace("\n", "\\n").replace("\r", "\\r")


def prepare_summary(result) -> Table:
    table = Table(
        title=literal(f"Prepared {result.out_dir}") + (" (cache reused)" if result.reused else ""), show_header=True
    )
    table.add_column("item", overflow="fold")  # a long path is folded onto more lines, never cut with an ellipsis
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("layout", result.layout)
    table.add_row("pairs", str(result.count))
    for name, count in result.split_sizes.items():
        table.add_row(f"  {name}", str(count))
    if result.groups:
        groups = result.groups
        table.add_row(
            "split by", literal(f"{groups['column']} of {Path(groups['file']).name} ({groups['count']} groups)")
        )
    table.add_row("skipped", str(len(result.skipped)))
    table.add_row("seconds", f"{result.seconds:.2f}")
    for path, reason in result.skipped[:20]:
        table.add_row(f"[yellow]skipped[/] {literal(str(path))}", literal(in_flags(reason)))
    if len(result.skipped) > 20:
        table.add_row(f"... and {len(result.skipped) - 20} more", "see manifest.json")
    return table


def metrics_table(report) -> Table:
    count = len(report.per_image)
    table = Table(title=literal(f"{report.title} ({count} image{'' if count == 1 else 's'})"))
    table.add_column("metric")
    for column in ("mean", "std", "median", "min", "max"):
        table.add_column(column, justify="right")
    for name, stats in report.summary.items():
        table.add_row(name, *(f"{stats[c]:.4f}" for c in ("mean", "std", "median", "min", "max")))
    return table


def sets_table(reports) -> Table:
    """One row per data set: images, mean Dice with its 95% bootstrap interval, and the Jaccard indices (every
    metric of every set is in the tables above and the JSON)."""
    table = Table(title="per data set (means)")
    for column in ("set", "images", "Dice", "95% interval", "Jaccard", "threshold Jaccard"):
        table.add_column(column, justify="left" if column == "set" else "right")
    for report in reports:
        summary = report.summary
        table.add_row(
            literal(report.name),
            str(len(report.per_image)),
            f"{summary['dice']['mean']:.4f}",
            f"{summary['dice']['ci95_low']:.4f}-{summary['dice']['ci95_high']:.4f}",
            f"{summary['jaccard']['mean']:.4f}",
            f"{summary['threshold_jaccard']['mean']:.4f}",
        )
    return table


def training_summary(result) -> Table:
    """The final table of `skinseg train`: the best and the last epoch, time, where the weights are."""
    table = Table(title=literal(f"Run {result.run_dir}") + (" (stopped early)" if result.stopped_early else ""))
    table.add_column("epoch", justify="right")
    for column in ("train loss", "train Dice", "val loss", "val Dice", "val accuracy"):
        table.add_column(column, justify="right")
    last = result.history[-1]
    rows = {"last": last}
    if result.best_epoch == last["epoch"]:
        rows = {"best, last": last}
    elif result.best_epoch:
        rows = {"best": result.history[result.best_epoch - 1], "last": last}
    for label, row in rows.items():
        table.add_row(
            f"{label} ({row['epoch']})",
            *(f"{row[k]:.4f}" for k in ("train_loss", "train_dice", "val_loss", "val_dice", "val_accuracy")),
        )
    minutes = sum(row["seconds"] for row in result.history) / 60
    table.caption = literal(
        f"{len(result.history)} epochs, {minutes:.1f} min; best weights in {result.run_dir / 'best.safetensors'}"
    )
    return table


def print_notes(console, notes: list[str] | tuple[str, ...]) -> None:
    """Settings that were asked for but are ignored or emulated, one yellow line each (nothing without a console)."""
    if console is None:
        return
    for note in notes:
        console.print(f"[yellow]note:[/] {literal(in_flags(note))}", highlight=False, soft_wrap=True)
