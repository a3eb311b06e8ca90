"""``python -m tracing.importing import ...``: the import command without the rest of the CLI."""

import typer

from .cli import register

app = typer.Typer(add_completion=False, help="tracegraph data import")


@app.callback()
def _main() -> None:
    """tracegraph data import (the same command as ``tracegraph import``)."""


register(app)

if __name__ == "__main__":
    app(prog_name="python -m tracing.importing")
