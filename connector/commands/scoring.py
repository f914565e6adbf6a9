"""Scoring commands: `rapport score NAME`, `rapport backtest NAME`, `rapport score-model show|set|publish`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from connector.errors import ConfigError


def _connection(name: str) -> tuple[Any, int, int]:
    from connector.config import get_settings
    from connector.connections import get_connection
    from connector.db import engine_for

    engine = engine_for(get_settings().sqlalchemy_url)
    connection = get_connection(engine, name)
    assert connection.id is not None
    return engine, connection.id, connection.workspace_id


def parse_horizon(text: str) -> int:
    """'180d', '26w', '6m' (30-day months) or a bare number of days -> days."""
    m = re.fullmatch(r"\s*(\d+)\s*([dwm]?)\s*", text)
    if not m or int(m.group(1)) <= 0:
        raise click.BadParameter(f"{text!r} is not a horizon; write e.g. 180d, 26w or 6m")
    return int(m.group(1)) * {"": 1, "d": 1, "w": 7, "m": 30}[m.group(2)]


def parse_date(text: str) -> datetime:
    """An ISO date or datetime; a date means midnight UTC, a naive datetime is read as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date; write it as YYYY-MM-DD") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@click.command("score")
@click.argument("name")
@click.option("--account", "accounts", multiple=True, help="Only this account (CRM id; repeatable) and its contacts.")
def score(name: str, accounts: tuple[str, ...]) -> None:
    """Score the connection's accounts and contacts with the published model and store a history snapshot."""
    import sqlalchemy as sa

    from connector.model import SyncRun
    from connector.scoring import score_connection

    engine, cid, _ = _connection(name)
    run_id = score_connection(engine, cid, account_ids=list(accounts) or None, trigger="cli")
    r = SyncRun.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        run = conn.execute(sa.select(r).where(r.c.id == run_id)).mappings().one()
    c = run["counts"]
    click.echo(f"scored {c.get('accounts', 0)} account(s) and {c.get('contacts', 0)} contact(s) of {name} with model "
               f"version {c.get('model_version')} in {run['duration_s']:.1f}s")
    for object, tiers in c.get("tiers", {}).items():
        for tier, n in tiers.items():
            click.echo(f"  {object:8s} tier {tier}: {n['records']:>8}  at risk: {n['at_risk']}")


def render_backtest(result: dict[str, Any]) -> str:
    """The backtest as a table: one line per score and component, then the calibration of the scores."""
    lines = [f"backtest as of {result['as_of'][:10]}, horizon {result['horizon_days']} days: {result['accounts']} accounts, "
             f"churn rate {result['churn_rate']}, expansion rate {result['expansion_rate']}",
             f"{'SCORE':32s}{'CHURN AUC':>10s}{'LIFT@10%':>10s}{'EXPAND AUC':>11s}{'KNOWN':>8s}"]
    for name, m in result["scores"].items():
        lines.append(f"{name:32s}{_fmt(m['churn_auc']):>10s}{_fmt(m['bottom_decile_churn_lift']):>10s}"
                     f"{_fmt(m['expansion_auc']):>11s}{m['known']:>8d}")
    for name in ("relationship", "experience"):
        lines.append(f"calibration of {name}: band  count  churn  expansion")
        for row in result["scores"][name]["calibration"]:
            lines.append(f"  {row['band']:>8s} {row['count']:>6d}  {_fmt(row['churn_rate']):>5s}  {_fmt(row['expansion_rate']):>5s}")
    return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


@click.command("backtest")
@click.argument("name")
@click.option("--as-of", "as_of", required=True, help="Score as of this date (YYYY-MM-DD), using only what was visible then.")
@click.option("--horizon", default="180d", show_default=True, help="How long after the date to look at outcomes.")
@click.option("--version", type=int, default=None, help="Score with this model version (a draft too) instead of the published one.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the full result as JSON to this file ('-' for standard output).")
def backtest(name: str, as_of: str, horizon: str, version: int | None, json_path: Path | None) -> None:
    """Check the scores against what happened next: churn AUC, bottom-decile lift, calibration, per component."""
    from connector import score_models
    from connector.backtest import run_backtest

    engine, cid, ws = _connection(name)
    params = None
    if version is not None:
        with engine.connect() as conn:
            params = score_models.get(conn, ws, version)["params"]
    result = run_backtest(engine, cid, as_of=parse_date(as_of), horizon_days=parse_horizon(horizon), params=params)
    if version is not None:
        result["model_version"] = version
    click.echo(render_backtest(result))
    if json_path is not None:
        text = json.dumps(result, indent=2)
        if str(json_path) == "-":
            click.echo(text)
        else:
            json_path.write_text(text + "\n")
            click.echo(f"written to {json_path}")


@click.group("score-model")
def score_model() -> None:
    """Show, edit (as a new draft version) and publish the scoring model of a connection's workspace."""


@score_model.command("show")
@click.argument("name")
@click.option("--version", type=int, default=None, help="This version (default: the published one).")
def show(name: str, version: int | None) -> None:
    """Print the versions and the parameters of one of them as JSON."""
    from connector import score_models

    engine, _, ws = _connection(name)
    with engine.begin() as conn:
        published, _ = score_models.published(conn, ws)
        row = score_models.get(conn, ws, version if version is not None else published)
        versions = score_models.versions(conn, ws)
    for v in versions:
        click.echo(f"version {v['version']:>3}  {v['status']:10s} {v['note'] or ''}")
    click.echo(f"parameters of version {row['version']} ({row['status']}):")
    click.echo(json.dumps(row["params"], indent=2))


@score_model.command("set")
@click.argument("name")
@click.argument("settings", nargs=-1)
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="A JSON file of parameters to apply.")
@click.option("--note", default=None, help="Why this version exists.")
def set_(name: str, settings: tuple[str, ...], file: Path | None, note: str | None) -> None:
    """Create a draft version from the published one with edits, e.g. relationship.weights.value=0.3."""
    from connector import score_models

    engine, _, ws = _connection(name)
    edits: dict[str, Any] = json.loads(file.read_text()) if file else {}
    for item in settings:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"{item!r} is not a setting; write PATH=VALUE, e.g. relationship.weights.value=0.3")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = edits
        *parents, leaf = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    if not edits:
        raise ConfigError("nothing to change; give PATH=VALUE settings or --file")
    version = score_models.create_draft(engine, ws, edits, note=note, created_by="cli")
    click.echo(f"draft version {version} created; check it with `rapport backtest {name} --as-of DATE --version {version}` "
               f"and publish it with `rapport score-model publish {name} {version}`")


@score_model.command("publish")
@click.argument("name")
@click.argument("version", type=int)
def publish(name: str, version: int) -> None:
    """Make a version the one that scores (the next `rapport score` uses it)."""
    from connector import score_models

    engine, _, ws = _connection(name)
    score_models.publish(engine, ws, version)
    click.echo(f"version {version} is published; run `rapport score {name}` to rescore with it")


COMMANDS: list[click.Command] = [score, backtest, score_model]
