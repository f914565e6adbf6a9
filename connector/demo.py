"""`rapport demo`: the whole job end to end on the embedded default, in one process.

Both CRM sandboxes and the Rapport web app run here; the CRMs are connected through their real auth
flows, provisioned, synced, scored and written back; then live changes made through the CRM APIs
come back as webhooks, and the new scores are read back through the same APIs.
"""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from connector import demo_stack
from connector.config import Settings, get_settings
from connector.demo_report import account_name, figures, pick_targets, render, why_stale

BIG_DEAL = 2_500_000.0  # the amount of the deal won live
CHANGE_TIMEOUT_S = 60.0
POLL_S = 0.2


class DemoFailed(Exception):
    """A step of the demo failed; the message names the step and the cause."""

    def __init__(self, step: str, cause: object) -> None:
        super().__init__(f"demo step '{step}' failed: {cause}")
        self.step = step


@dataclass
class Crm:
    """One connected CRM of the demo."""

    kind: str
    name: str
    id: int
    sandbox: Any
    view: Any = None
    setup_calls: int = 0  # connect and provision (no run records them)


class Steps:
    """Runs the demo's steps: announces each, times it, and turns any error into DemoFailed."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.started = time.monotonic()

    @contextmanager
    def __call__(self, title: str) -> Iterator[None]:
        t0 = time.monotonic()
        self.echo(f"[{t0 - self.started:6.1f}s] {title} ...")
        try:
            yield
        except DemoFailed:
            raise
        except Exception as exc:  # any failure ends the demo with the step's name and the reason
            raise DemoFailed(title, str(exc) or type(exc).__name__) from exc

    def done(self, text: str) -> None:
        """Report what a step achieved."""
        self.echo(f"{'':9s} {text}")


def demo_settings(data_dir: Path | None) -> tuple[Settings, Path | None, list[str]]:
    """The embedded default in `data_dir`, RAPPORT_DATA_DIR or a fresh temporary directory; what it ignores."""
    base = get_settings()
    if base.env == "production":
        raise DemoFailed("prepare", "RAPPORT_ENV=production: the demo only runs on the embedded default")
    temp = None
    if data_dir is None and "data_dir" not in base.model_fields_set:
        temp = data_dir = Path(tempfile.mkdtemp(prefix="rapport-demo-"))
    ignored = [name for name, value in (("DATABASE_URL", base.database_url), ("REDIS_URL", base.redis_url)) if value]
    update = {"database_url": None, "redis_url": None, "data_dir": data_dir or base.data_dir}
    return base.model_copy(update=update), temp, ignored


def _free_name(engine: Any, wanted: str) -> str:
    from connector.connections import list_connections

    taken = {c.name for c in list_connections(engine)}
    return next(n for n in (wanted, *(f"{wanted}-{i}" for i in range(2, 10_000))) if n not in taken)


def run_demo(*, size: str = "small", seed: int = 0, data_dir: Path | None = None, serve: bool = False,
             accounts: int | None = None, echo: Callable[[str], None] = print,
             change_timeout: float = CHANGE_TIMEOUT_S) -> dict[str, Any]:
    """Run the demo; return its summary (raises DemoFailed naming the step that failed)."""
    from connector import queues
    from connector.app import create_app
    from connector.db import engine_for
    from connector.migrate import upgrade

    step = Steps(echo)
    with ExitStack() as stack:
        with step("prepare the embedded database and queue"):
            settings, temp, ignored = demo_settings(data_dir)
            if temp is not None:
                stack.callback(shutil.rmtree, temp, True)
            engine = engine_for(settings.sqlalchemy_url)
            stack.callback(engine.dispose)
            upgrade(engine)
            queues.redis_for(settings).flushdb()  # the in-process queue of this process: a fresh start
            step.done(f"SQLite in {settings.data_dir}, in-process queue"
                      + (f" ({' and '.join(ignored)} not used)" if ignored else ""))
        with step("serve the Rapport web app"):
            web = demo_stack.WebApp()
            stack.callback(web.stop)
            settings = settings.model_copy(update={"public_url": web.url})
            queues.bind(settings)
            web.serve(create_app(settings))
            step.done(f"webhooks and admin app at {web.url}")
        with step(f"start the Salesforce and HubSpot sandboxes ({size} world, seed {seed})"):
            sandboxes = demo_stack.start_sandboxes(size, seed, accounts)
            stack.callback(sandboxes.stop)
            usage_at_start = demo_stack.api_usage(sandboxes)
            step.done(f"Salesforce {sandboxes.salesforce.info['instance_url']}, "
                      f"HubSpot {sandboxes.hubspot.info['api_base']}")
        crms = _connect(step, engine, settings, sandboxes, web.url)
        _load(step, engine, settings, crms, sandboxes)
        changes = _live_changes(step, engine, settings, crms, change_timeout)
        summary = _summary(step, engine, crms, changes)
        used = demo_stack.api_usage(sandboxes)
        for crm in crms:  # what the CRM counted, less the demo's own reads and changes
            fig = summary["crms"][crm.kind]
            fig["api_calls_in_runs"] = fig["api_calls"]
            fig["api_calls"] = used[crm.kind] - usage_at_start[crm.kind] - crm.view.calls
        summary["data_dir"] = str(settings.data_dir)
        echo("")
        echo(render(summary))
        if serve:
            _serve(engine, settings, web.url, crms, echo)
    return summary


def _connect(step: Steps, engine: Any, settings: Settings, sandboxes: Any, url: str) -> list[Crm]:
    from connector.commands import hubspot as hs_commands
    from connector.commands import salesforce as sf_commands
    from connector.demo_crm import HubSpotView, SalesforceView
    from connector.mappings import load_mapping

    with step("connect Salesforce (OAuth 2.0 JWT bearer flow against the org's token endpoint)"):
        i = sandboxes.salesforce.info
        shown = sf_commands.connect(settings, _free_name(engine, "demo-salesforce"), client_id=i["client_id"],
                                    username=i["username"], private_key=i["jwt_private_key"],
                                    login_url=i["instance_url"], ca_bundle=i["ca_bundle"])
        sf = Crm("salesforce", shown["name"], shown["id"], sandboxes.salesforce, setup_calls=shown["api_calls"])
        step.done(f"connection {sf.name}: org {shown['organization_id']} at {shown['instance_url']}")
    with step("connect HubSpot (private-app token, webhook signing secret)"):
        i = sandboxes.hubspot.info
        shown = hs_commands.connect(settings, _free_name(engine, "demo-hubspot"), token=i["access_token"],
                                    app_secret=i["app_secret"], portal_id=str(i["portal_id"]), api_base=i["api_base"])
        hub = Crm("hubspot", shown["name"], shown["id"], sandboxes.hubspot)
        step.done(f"connection {hub.name}: portal {shown['portal_id']} at {shown['api_base']}")
    crms = [sf, hub]
    with step("provision the score fields (Salesforce Tooling API, HubSpot properties API)"):
        for crm in crms:
            done = sf_commands.provision_fields(engine, settings, crm.id)
            crm.setup_calls += int(done["api_calls"])
            made = sum(len(created) for created, _ in done["objects"].values())
            step.done(f"{crm.kind}: created {made} field(s) on {', '.join(done['objects'])}")
    with step("route webhooks to Rapport (Salesforce Outbound Messages, HubSpot webhook subscriptions)"):
        sf_map, hub_map = load_mapping(engine, sf.id, sf.kind), load_mapping(engine, hub.id, hub.kind)
        rules = demo_stack.outbound_rules(sf_map.read)
        sf.sandbox.hook("POST", "outbound", {"url": f"{url}/webhooks/salesforce/{sf.name}", "rules": rules})
        own = {f for targets in hub_map.write.values() for f in targets.values()}
        subs = demo_stack.hubspot_subscriptions(hub_map.read, own)
        demo_stack.hubspot_hook(hub.sandbox, "PUT", "webhooks", {"targetUrl": f"{url}/webhooks/hubspot",
                                                                 "subscriptions": subs})
        step.done(f"Salesforce: outbound messages for {', '.join(rules)}; HubSpot: {len(subs)} subscriptions")
        si, hi = sf.sandbox.info, hub.sandbox.info
        sf.view = SalesforceView(si["instance_url"], si["access_token"], si["ca_bundle"], sf_map.read,
                                 sf_map.write["account"])
        hub.view = HubSpotView(hi["api_base"], hi["access_token"], hub_map.read, hub_map.write["account"])
    return crms


def _load(step: Steps, engine: Any, settings: Settings, crms: list[Crm], sandboxes: Any) -> None:
    from connector.model import SyncRun
    from connector.progress import watch_runs
    from connector.scoring import score_connection
    from connector.sync import sync_connection
    from connector.writeback import writeback_connection

    for crm in crms:
        with step(f"full sync of {crm.kind}"), watch_runs(engine, crm.id, desc=f"sync {crm.kind}"):
            run_id = sync_connection(engine, settings, crm.id, full=True, trigger="demo")
            t = SyncRun.__table__  # type: ignore[attr-defined]
            with engine.connect() as conn:
                run = conn.execute(t.select().where(t.c.id == run_id)).mappings().one()
            if run["status"] != "succeeded":
                raise RuntimeError(f"the sync ended {run['status']}: {run['error'] or run['errors'][:3]}")
            records = {obj: sum(v for k, v in c.items() if k in ("created", "updated")) for obj, c in run["counts"].items()}
            step.done(f"{run['api_calls']} API calls: " + ", ".join(f"{n} {obj}" for obj, n in records.items()))
    for crm in crms:
        with step(f"score {crm.kind}"):
            score_connection(engine, crm.id, trigger="demo")
        with step(f"write the scores back to {crm.kind}"):
            out = writeback_connection(engine, settings, crm.id, trigger="demo")
            if out.get("failed"):
                raise RuntimeError(f"{out['failed']} record(s) refused: {out['failures'][:3]}")
            step.done(f"{out['written']} records written in {out['api_calls']} API calls")
    with step("let the CRMs deliver the webhooks our writes caused (echoes: nothing is rescored)"):
        if not demo_stack.settle(sandboxes):
            raise RuntimeError("the sandboxes still hold undelivered webhooks after 30 s; see their "
                               "/__sandbox__/outbound and /__sandbox__/webhooks/deliveries logs")
        demo_stack.drain_events(engine, settings, [c.id for c in crms])
        for crm in crms:
            fig = figures(engine, crm.id, {})
            step.done(f"{crm.kind}: {sum(fig['webhook_events'].values())} webhook events, "
                      f"{fig['webhook_rescores']} rescores")


def _live_changes(step: Steps, engine: Any, settings: Settings, crms: list[Crm], timeout: float) -> list[dict]:
    changes = []
    for crm in crms:
        targets = pick_targets(engine, crm.id)
        for kind, title in (("deal", "big deal won"), ("case", "urgent case escalated, left open")):
            account, record = targets[kind]
            name = account_name(engine, crm.id, account)
            with step(f"{crm.kind}: {title} on {name}, through the CRM API"):
                before = crm.view.scores(account)
                what = crm.view.win_deal(record, BIG_DEAL) if kind == "deal" else crm.view.escalate_case(record)
                changed = time.monotonic()
                after, fresh = _wait_fresh(engine, settings, crm, account, before, changed, timeout, what)
                step.done(f"{what}; new score readable after {fresh:.2f}s")
            changes.append({"crm": crm.kind, "change": title, "kind": kind, "account": account, "account_name": name,
                            "record": record, "before": before, "after": after, "freshness_s": round(fresh, 3)})
    return changes


def _wait_fresh(engine: Any, settings: Settings, crm: Crm, account: str, before: dict[str, Any], changed: float,
                timeout: float, what: str) -> tuple[dict[str, Any], float]:
    """Work the queue and read the account through the CRM API until its score was rewritten."""
    from connector.model import utcnow

    started = utcnow() - timedelta(seconds=time.monotonic() - changed + 1)
    while True:
        demo_stack.pump(settings)
        now = crm.view.scores(account)
        seen = time.monotonic()
        if now.get("scored_at") != before.get("scored_at") and now.get("relationship_score") is not None:
            return now, seen - changed
        if seen - changed > timeout:
            raise RuntimeError(f"no new score on {crm.kind} account {account} within {timeout:.0f}s of the change "
                               f"({what}): {why_stale(engine, crm.id, crm.name, account, started)}")
        time.sleep(POLL_S)


def _summary(step: Steps, engine: Any, crms: list[Crm], changes: list[dict]) -> dict[str, Any]:
    from connector.mappings import load_mapping

    out: dict[str, Any] = {"crms": {}, "changes": changes}
    with step("check through the CRM APIs that every live account has a relationship score"):
        for crm in crms:
            fig = figures(engine, crm.id, load_mapping(engine, crm.id, crm.kind).write)
            total, missing = crm.view.accounts()
            fig.update(connection=crm.name, api_calls=fig["api_calls"] + crm.setup_calls, accounts_in_crm=total,
                       accounts_with_score=total - len(missing), accounts_missing_score=missing[:20])
            out["crms"][crm.kind] = fig
            step.done(f"{crm.kind}: {total - len(missing)} of {total} accounts have one")
            if missing or not total:
                raise RuntimeError(f"{len(missing)} of {total} {crm.kind} accounts have no relationship score, "
                                   f"e.g. {', '.join(missing[:5])}")
    out["seconds"] = round(time.monotonic() - step.started, 1)
    return out


def _serve(engine: Any, settings: Settings, url: str, crms: list[Crm], echo: Callable[[str], None]) -> None:
    """Keep the web app and the sandboxes up, working webhooks as they come, until Ctrl-C."""
    from connector import auth

    password = secrets.token_urlsafe(12)
    email = f"admin-{secrets.token_hex(3)}@rapport-demo.example.com"
    auth.create_user(engine, email, password, role="admin")
    echo("")
    echo(f"serving until Ctrl-C: Rapport at {url}  (sign in as {email} / {password})")
    for crm in crms:
        info = crm.sandbox.info
        echo(f"  {crm.kind} sandbox: {info.get('instance_url') or info.get('api_base')}  "
             f"(connection {crm.name}; `rapport sandbox` hooks under /__sandbox__/)")
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            demo_stack.pump(settings)
    except KeyboardInterrupt:
        pass
    echo("stopped")
