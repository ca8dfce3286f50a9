"""The Typer group, its shared options and the one way errors end a command: a red line and an exit code.

Nothing heavy is imported at module level, so `skinseg --help` and `--version` never load torch.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand

from skinseg import __version__
from skinseg.cli.flags import flags_of, in_flags
from skinseg.cli.tables import literal


class MetavarCommand(TyperCommand):
    """Arguments with a metavar are shown by it alone, in the usage line and the help: Typer would add braces
    and their Python type (`{inputs}...`, `<list[Path]>`)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if isinstance(param, TyperArgument) and param.metavar:
                param.get_usage_pieces = lambda ctx, name=param.metavar: [name]  # type: ignore[method-assign,misc]
                param.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
        return params


def _layouts() -> str:
    from skinseg.data.layouts import LAYOUTS

    return LAYOUTS.choices()


# An option whose help holds "{choices}" lists its registry's names there, read when the help is shown (the
# registries import more than `skinseg --help` should).
CHOICES = "{choices}"
CHOICES_OF: dict[str, Callable[[], str]] = {"layout": _layouts}


class ChoicesCommand(MetavarCommand):
    """A command whose options' help lists the choices of their registries (CHOICES_OF, by parameter name)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            help_text = getattr(param, "help", None)
            if help_text and CHOICES in help_text and param.name in CHOICES_OF:
                param.help = help_text.replace(CHOICES, CHOICES_OF[param.name]())
        return params


# Paths are printed as they are: markup in them is escaped where they are printed, and no `:name:` is an emoji.
console = Console(stderr=True, emoji=False)
out = Console(emoji=False)

DeviceOption = Annotated[str, typer.Option(help="auto (CUDA, then MPS, then CPU), cpu, cuda or mps.")]
PrecisionOption = Annotated[
    str, typer.Option(help="auto (bf16 on CUDA and on CPUs with native bf16, else fp32), fp32 or bf16.")
]

# The model's options, shared by segment, measure and evaluate.
ModelOption = Annotated[Path | None, typer.Option(help="Model weights [default: the bundled model].")]
ThresholdOption = Annotated[float | None, typer.Option(help="Probability threshold [default: the model's].")]
TtaOption = Annotated[bool, typer.Option(help="Average the predictions of the image and its flips.")]
PostprocessOption = Annotated[
    bool, typer.Option(help="Keep the largest lesion and fill its holes (measured to help on ISIC 2018).")
]
BatchSizeOption = Annotated[int, typer.Option(help="Images per forward pass.")]
BackendOption = Annotated[
    str,
    typer.Option(
        help="torch, or onnx (ONNX Runtime on the CPU; needs skinseg-unet[onnx]; a .safetensors model is exported once"
        " into the cache)."
    ),
]


def model_run(
    model: Path | None,
    threshold: float | None,
    tta: bool,
    postprocess: bool,
    backend: str,
    precision: str,
    device: str,
    batch_size: int,
):
    """The ModelRun of the model's options above, as segment, measure and evaluate take them."""
    from skinseg.inference.model_run import ModelRun

    return ModelRun(model, threshold, tta, postprocess, backend, precision, device, batch_size)


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


def report_errors(command: Callable) -> Callable:
    """Package errors and OSErrors become one red line and exit code 1; Ctrl-C exits with 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from skinseg.errors import Interrupted, SkinsegError

        with flags_of(command):  # its messages name its own options
            try:
                return command(*args, **kwargs)
            except SkinsegError as exc:
                interrupted = isinstance(exc, Interrupted)
                if interrupted:
                    _ignore_further_interrupts()
                console.print(f"[bold red]error:[/] {literal(in_flags(str(exc)))}", highlight=False, soft_wrap=True)
                raise typer.Exit(130 if interrupted else 1) from None
            except OSError as exc:  # one not caught where the file is written: still one line, with the path
                where = f"{exc.filename}: " if exc.filename else ""
                console.print(
                    f"[bold red]error:[/] {literal(where + (exc.strerror or str(exc)))}",
                    highlight=False,
                    soft_wrap=True,
                )
                raise typer.Exit(1) from None
            except KeyboardInterrupt:
                _ignore_further_interrupts()
                console.print("[bold red]interrupted[/]")
                raise typer.Exit(130) from None

    return wrapper


# Whether this process is the `skinseg` command (commands.main says so). Only there are the library's imports
# frozen: in a caller's own process (a test, a notebook) a freeze would keep its later garbage from collection.
_OWN_PROCESS = {"claimed": False}


def claim_process() -> None:
    """This process is the `skinseg` command: heavy_imports may pause the collector and freeze what it made."""
    _OWN_PROCESS["claimed"] = True


@contextlib.contextmanager
def heavy_imports() -> Iterator[None]:
    """The library's modules, and torch with them, imported with the cycle collector paused, then frozen (in the
    `skinseg` process only: claim_process).

    torch's import makes hundreds of thousands of objects, and the collections it set off walked them all, over
    and over, during the import and after: 0.17 s of a one-image segment's 2.7 s. Frozen, they are never walked
    again. The few thousand objects the import leaves as garbage (about 1 MB) are frozen with them."""
    if not (_OWN_PROCESS["claimed"] and gc.isenabled()):  # a caller's process, or a caller's paused collector
        yield
        return
    try:
        gc.disable()
        yield
    finally:
        gc.freeze()
        gc.enable()


def _version(value: bool) -> None:
    if value:
        out.print(f"skinseg {__version__}")
        raise typer.Exit()


def main_options(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = None,
) -> None:
    """Skin-lesion segmentation in dermoscopy images with the improved UNet."""


def new_app() -> typer.Typer:
    """The `skinseg` group with its own options and no command yet (skinseg.cli.commands registers them)."""
    app = typer.Typer(
        name="skinseg",
        help="Skin-lesion segmentation in dermoscopy images with the improved UNet.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(main_options)
    return app
