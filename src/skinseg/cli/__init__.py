"""The command line: thin Typer commands, each turning its options into a frozen config and calling one
library function (docs/architecture.md). `skinseg.cli:main` is the `skinseg` command."""

from skinseg.cli import adapt, evaluate, export, measure, prepare, segment, train
from skinseg.cli.base import ChoicesCommand, MetavarCommand, app, main

app.command(cls=ChoicesCommand)(prepare.prepare)
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command(cls=MetavarCommand)(segment.segment)
app.command(cls=MetavarCommand)(measure.measure)
app.command(cls=MetavarCommand)(export.export)
app.command()(adapt.adapt)

__all__ = ["app", "main"]
