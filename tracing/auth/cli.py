"""``tracegraph users add|list|revoke``: registered on the main CLI by ``register(app)``."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..store import open_store
from . import service
from .models import Role
from .repository import UserExists

__all__ = ["register", "users_app"]

console = Console()
users_app = typer.Typer(help="API users and their bearer tokens (stored hashed).", no_args_is_help=True)

StoreOption = Annotated[
    Optional[str], typer.Option("--store", help="Store URL (default: $TRACEGRAPH_STORE or sqlite:///tracegraph.db)")
]


def _open(url: str | None):
    if url is None:
        from ..config import get_settings

        url = get_settings().store
    store = open_store(url)
    return store, service.auth_repository(store)


def _now() -> datetime:
    return datetime.now(timezone.utc)


@users_app.command("add")
def add_command(
    name: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -)")],
    role: Annotated[Role, typer.Option("--role", help="admin, investigator, commander, site_operator or analyst")],
    region: Annotated[Optional[str], typer.Option("--region", help="Region code the user is limited to")] = None,
    site: Annotated[Optional[str], typer.Option("--site", help="Isolation site id (site_operator)")] = None,
    store: StoreOption = None,
) -> None:
    """Create a user and print their bearer token (shown once, never stored in clear)."""
    graph, repo = _open(store)
    try:
        user, token = service.create_user(repo, name, role=role, region=region, site_id=site, now=_now())
    except (UserExists, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    finally:
        graph.close()
    console.print(f"user {user.name} ({user.role.value}, region {user.region or 'all'}) created; token (shown once):",
                  highlight=False)
    typer.echo(token)


@users_app.command("token")
def token_command(name: Annotated[str, typer.Argument()], store: StoreOption = None) -> None:
    """Issue an additional token for an existing user."""
    graph, repo = _open(store)
    try:
        token = service.issue_token(repo, name, now=_now())
    except LookupError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from error
    finally:
        graph.close()
    typer.echo(token)


@users_app.command("list")
def list_command(
    store: StoreOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """List users (never tokens)."""
    graph, repo = _open(store)
    try:
        users = repo.list_users()
    finally:
        graph.close()
    if as_json:
        typer.echo(json.dumps([u.model_dump(mode="json") for u in users], indent=2))
        return
    table = Table(title=f"{len(users)} user(s)")
    for column in ("Name", "Role", "Region", "Site", "Created", "Revoked"):
        table.add_column(column)
    for u in users:
        table.add_row(u.name, u.role.value, u.region or "all", u.site_id or "", u.created_at.strftime("%Y-%m-%d %H:%M"),
                      u.revoked_at.strftime("%Y-%m-%d %H:%M") if u.revoked_at else "")
    console.print(table)


@users_app.command("revoke")
def revoke_command(name: Annotated[str, typer.Argument()], store: StoreOption = None) -> None:
    """Revoke a user and all their tokens (the record stays, for the audit log)."""
    graph, repo = _open(store)
    try:
        revoked = service.revoke_user(repo, name, now=_now())
    finally:
        graph.close()
    if not revoked:
        console.print(f"[red]error:[/red] no active user {name!r}")
        raise typer.Exit(1)
    console.print(f"user {name} revoked")


def register(app: typer.Typer) -> None:
    """Add the ``users`` group to the main CLI."""
    app.add_typer(users_app, name="users")
