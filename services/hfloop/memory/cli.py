"""`hfloop memory search|retract`: through the HTTP API (the embedded store belongs to the
process that serves it; HFLOOP_API_URL and HFLOOP_API_KEY say where and as whom)."""

from __future__ import annotations

import json

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command()
def search(
    text: str = typer.Argument(..., help="The request to find corrections for."),
    agent_id: str = typer.Option(..., "--agent", help="Agent id."),
    k: int = typer.Option(5, help="How many results at most."),
    threshold: float = typer.Option(0.5, help="Smallest cosine similarity."),
    user_id: str = typer.Option(None, "--user", help="Also show this user's private entries."),
    route: str = typer.Option(None, help="Only entries of this route."),
    api_url: str = typer.Option(None, help="API base URL (default HFLOOP_API_URL)."),
    api_key: str = typer.Option(None, help="API key (default HFLOOP_API_KEY)."),
) -> None:
    """Corrections the memory would serve for TEXT."""
    from hfloop.sdk.http import ApiError, HfloopClient

    with HfloopClient(api_url, api_key=api_key) as c:
        try:
            hits = c.memory.search(
                text, agent_id=agent_id, k=k, threshold=threshold, user_id=user_id, route=route
            )
        except ApiError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(json.dumps(hits, indent=2))


@app.command()
def retract(
    event_id: str = typer.Option(None, "--event-id", help="Retract what this feedback/label event caused."),
    annotator: str = typer.Option(None, "--annotator", help="Retract everything this annotator caused."),
    api_url: str = typer.Option(None, help="API base URL (default HFLOOP_API_URL)."),
    api_key: str = typer.Option(None, help="API key (default HFLOOP_API_KEY)."),
) -> None:
    """Remove memory entries, routing and weight evidence of an annotator or an event."""
    from hfloop.sdk.http import ApiError, HfloopClient

    if not (event_id or annotator):
        typer.echo("error: give --event-id or --annotator", err=True)
        raise typer.Exit(2)
    with HfloopClient(api_url, api_key=api_key) as c:
        try:
            out = c.memory.retract(event_id=event_id, annotator_id=annotator)
        except ApiError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from exc
    typer.echo(json.dumps(out, indent=2))
