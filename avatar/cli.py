"""The ``avatar`` command line: thin — parse, call the API, report.

Bad input raises :class:`avatar.errors.AvatarInputError` (or ``renderers.RenderInputError``);
:func:`main` turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console

from avatar import __version__
from avatar.errors import AvatarInputError

app = typer.Typer(
    name="avatar",
    help="One photo to an animatable 3D head that listens.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"avatar {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """One photo to an animatable 3D head that listens."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one line and exit code 2."""
    try:
        app(args=argv, standalone_mode=True)
    except AvatarInputError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
