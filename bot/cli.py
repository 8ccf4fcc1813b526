"""Command line: ``python -m bot run | chat | flows check``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from bot.settings import Settings

if TYPE_CHECKING:
    from bot.staff.accounts import StaffAccounts

T = TypeVar("T")

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Certification enquiry bot.")
flows_app = typer.Typer(no_args_is_help=True, help="Content in flows/.")
app.add_typer(flows_app, name="flows")
db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")


leads_app = typer.Typer(no_args_is_help=True, help="Leads in the database.")
app.add_typer(leads_app, name="leads")


@leads_app.command("export")
def leads_export(
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    since: Annotated[
        str | None, typer.Option(help="Only leads created on or after this date (YYYY-MM-DD)")
    ] = None,
    status: Annotated[str | None, typer.Option(help="new, contacted, qualified, won or lost")] = None,
    bom: Annotated[
        bool, typer.Option("--bom", help="Start with a UTF-8 byte order mark (for Excel)")
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
) -> None:
    """Stream leads as CSV or JSON lines (UTF-8), in constant memory."""
    import asyncio
    import sys
    from datetime import UTC, datetime

    from bot.db import create_database
    from bot.db.models import LEAD_STATUSES
    from bot.leads.export import Format, export_leads
    from bot.leads.repository import LeadRepository

    if fmt not in {"csv", "jsonl"}:
        raise typer.BadParameter("use csv or jsonl", param_hint="--format")
    if status is not None and status not in LEAD_STATUSES:
        raise typer.BadParameter(f"one of {', '.join(LEAD_STATUSES)}", param_hint="--status")
    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ValueError:
        raise typer.BadParameter("a date such as 2026-11-01", param_hint="--since") from None
    settings = Settings()

    kind: Format = "jsonl" if fmt == "jsonl" else "csv"

    async def run() -> int:
        db = create_database(settings.database_url)
        repo = LeadRepository(db)
        try:
            if output is None:
                sys.stdout.reconfigure(encoding="utf-8", newline="")  # type: ignore[union-attr]
                return await export_leads(repo, sys.stdout, fmt=kind, since=start, status=status, bom=bom)
            with output.open("w", encoding="utf-8", newline="") as out:
                return await export_leads(repo, out, fmt=kind, since=start, status=status, bom=bom)
        finally:
            await db.dispose()

    count = asyncio.run(run())
    typer.echo(f"{count} leads exported", err=True)


faq_app = typer.Typer(no_args_is_help=True, help="The FAQ and its matcher.")
app.add_typer(faq_app, name="faq")


@faq_app.command("eval")
def faq_eval(
    questions: Annotated[
        Path | None, typer.Option(help="One labelled set (YAML); default: both parts in tests/")
    ] = None,
    flows: Annotated[Path | None, typer.Option(help="Content folder (default: FLOWS_DIR)")] = None,
    quiet: Annotated[bool, typer.Option(help="Only the figures, not every mistake")] = False,
) -> None:
    """Right answers (topics and specific passages), out-of-scope rejection and the confusions,
    on the development part and the held-out part of the labelled set."""
    from bot.content import ContentError, load_content
    from bot.faq.evaluate import evaluate, load_labelled, parts
    from bot.faq.matcher import FaqMatcher

    try:
        content = load_content(flows or Settings().flows_dir)
    except ContentError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    matcher = FaqMatcher.of(content)
    sets = {questions.name: load_labelled(questions)} if questions else parts(Path("tests"))
    for name, labelled in sets.items():
        report = evaluate(matcher, labelled, content)
        report.name = name
        for line in report.lines(mistakes=not quiet):
            typer.echo(line)


def _logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision")] = "head") -> None:
    """Create or upgrade the database schema (DATABASE_URL)."""
    from bot.db.migrate import upgrade_sync

    settings = Settings()
    _logging(settings.log_level)
    upgrade_sync(settings.database_url, revision)
    typer.echo(f"database at {revision}")


@flows_app.command("check")
def flows_check(
    directory: Annotated[Path | None, typer.Argument(help="Content folder (default: FLOWS_DIR)")] = None,
) -> None:
    """Validate all content; print each problem as file:line: message; exit 1 if any."""
    from bot.content import check_dir

    root = directory or Settings().flows_dir
    problems = check_dir(root)
    for p in problems:
        typer.echo(str(p))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {root}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{root}: OK")


@flows_app.command("test")
def flows_test(
    directory: Annotated[Path | None, typer.Argument(help="Content folder (default: FLOWS_DIR)")] = None,
) -> None:
    """Run the conversation tests in <folder>/tests/*.yaml; exit 1 if any fails."""
    from bot.content import ContentError, load_content
    from bot.engine.engine import Engine
    from bot.stories import run_stories

    root = directory or Settings().flows_dir
    try:
        engine = Engine(load_content(root))
    except ContentError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    results = run_stories(engine, root / "tests")
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.file}: {r.name}")
        for failure in r.failures:
            typer.echo(f"    {failure}")
    failed = sum(not r.ok for r in results)
    typer.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed or not results:
        raise typer.Exit(1)


@app.command()
def chat(
    lang: Annotated[str | None, typer.Option(help="zh or en (default: the content's default)")] = None,
    flows: Annotated[Path | None, typer.Option(help="Content folder (default: FLOWS_DIR)")] = None,
) -> None:
    """Chat with the bot in the terminal (interactive, or one input per line on stdin)."""
    from bot.content import ContentError, load_content
    from bot.engine.engine import Engine
    from bot.simulator import main as simulate

    root = flows or Settings().flows_dir
    try:
        content = load_content(root)
    except ContentError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    simulate(Engine(content), lang)


@app.command()
def run() -> None:
    """Run the bot: the web chat and the staff dashboard, and Telegram (long polling) when
    BOT_TOKEN is set."""
    settings = Settings()
    if settings.bot_token is not None and not settings.bot_token.get_secret_value().strip():
        settings = settings.model_copy(update={"bot_token": None})
    if settings.bot_token is None and not settings.web_enabled:
        typer.echo(
            "Nothing to run: BOT_TOKEN is not set and the web server is off (WEB_ENABLED=false).\n"
            "Set BOT_TOKEN=<token from @BotFather> for Telegram, or WEB_ENABLED=true for the web chat.\n"
            "To try the conversation in the terminal, run: python -m bot chat",
            err=True,
        )
        raise typer.Exit(2)
    from aiogram.utils.token import TokenValidationError

    from bot.content import ContentError
    from bot.service import run as run_service
    from bot.service import run_loop

    _logging(settings.log_level)
    try:
        run_loop(run_service(settings))
    except ContentError as e:
        typer.echo("The content in flows/ has problems; the bot will not start:\n" + str(e), err=True)
        raise typer.Exit(1) from None
    except TokenValidationError:
        typer.echo("BOT_TOKEN does not look like a bot token (digits:letters, from @BotFather).", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        pass


wechat_app = typer.Typer(no_args_is_help=True, help="WeChat Official Account (微信公众号).")
app.add_typer(wechat_app, name="wechat")


@wechat_app.command("menu")
def wechat_menu(
    show: Annotated[bool, typer.Option("--show", help="Print the menu's JSON; publish nothing")] = False,
) -> None:
    """Publish the custom menu (自定义菜单) from wechat_menu in flows/common.yaml."""
    import asyncio
    import json

    from bot.content import ContentError, load_content
    from bot.wechat.api import WeChatError
    from bot.wechat.menu import build_menu, publish_menu

    settings = Settings()
    try:
        content = load_content(settings.flows_dir)
    except ContentError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    if show:
        typer.echo(json.dumps(build_menu(content), ensure_ascii=False, indent=2))
        return
    try:
        body = asyncio.run(publish_menu(settings, content))
    except ValueError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    except WeChatError as e:
        typer.echo(f"WeChat refused the menu: {e} (a verified account is needed; see README)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"menu published: {len(body['button'])} entries")


webhook_app = typer.Typer(help="Run by webhook (one process or several replicas).")
app.add_typer(webhook_app, name="webhook")


def _bot_settings() -> Settings:
    settings = Settings()
    if settings.bot_token is None or not settings.bot_token.get_secret_value().strip():
        typer.echo(
            "BOT_TOKEN is not set. Put BOT_TOKEN=<token from @BotFather> in .env or the environment.\n"
            "To try the conversation without Telegram, run: python -m bot chat",
            err=True,
        )
        raise typer.Exit(2)
    return settings


@webhook_app.callback(invoke_without_command=True)
def webhook_serve(ctx: typer.Context) -> None:
    """Serve the webhook (WEBHOOK_HOST:WEBHOOK_PORT, WEBHOOK_PATH) until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.content import ContentError
    from bot.service import run_loop
    from bot.webhook import run_webhook

    settings = _bot_settings()
    if settings.webhook_secret is None:
        typer.echo("WEBHOOK_SECRET is not set (1-256 characters of A-Z, a-z, 0-9, _ and -).", err=True)
        raise typer.Exit(2)
    _logging(settings.log_level)
    try:
        run_loop(run_webhook(settings))
    except ContentError as e:
        typer.echo("The content in flows/ has problems; the bot will not start:\n" + str(e), err=True)
        raise typer.Exit(1) from None


@webhook_app.command("set")
def webhook_set(
    drop_pending: Annotated[bool, typer.Option(help="Drop the updates waiting at Telegram")] = False,
) -> None:
    """Register WEBHOOK_BASE_URL + WEBHOOK_PATH with Telegram (once, at deploy time)."""
    import asyncio

    from bot.webhook import set_webhook

    settings = _bot_settings()
    try:
        url = asyncio.run(set_webhook(settings, drop_pending=drop_pending))
    except ValueError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"webhook set: {url}")


staff_app = typer.Typer(no_args_is_help=True, help="Web dashboard accounts for sales staff.")
app.add_typer(staff_app, name="staff")


def _password(stdin: bool) -> str:
    import sys

    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


def _accounts_run(job: Callable[[StaffAccounts], Awaitable[T]]) -> T:
    import asyncio

    from bot.db import create_database
    from bot.db.migrate import upgrade_sync
    from bot.staff.accounts import StaffAccounts

    settings = Settings()
    upgrade_sync(settings.database_url)

    async def go() -> T:
        db = create_database(settings.database_url)
        try:
            return await job(StaffAccounts(db))
        finally:
            await db.dispose()

    return asyncio.run(go())


@staff_app.command("add")
def staff_add(
    name: Annotated[str, typer.Argument(help="Sign-in name (letters a-z, digits, . _ -)")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
) -> None:
    """Create a dashboard account (the password is stored as an argon2 hash)."""
    from bot.staff.accounts import AccountError, check_name, check_password

    try:
        check_name(name)
        password = _password(password_stdin)
        check_password(password)
        _accounts_run(lambda accounts: accounts.add(name, password))
    except AccountError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"account {check_name(name)} created")


@staff_app.command("passwd")
def staff_passwd(
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a new password (signs the account out everywhere, lifts a lock)."""
    from bot.staff.accounts import AccountError

    try:
        password = _password(password_stdin)
        _accounts_run(lambda accounts: accounts.set_password(name, password))
    except AccountError as e:
        typer.echo(str(e), err=True)
        raise typer.Exit(1) from None
    typer.echo("password changed")


@staff_app.command("remove")
def staff_remove(name: str) -> None:
    """Delete an account (and its sessions)."""
    if not _accounts_run(lambda accounts: accounts.remove(name)):
        typer.echo(f"no account {name}", err=True)
        raise typer.Exit(1)
    typer.echo("account removed")


@staff_app.command("list")
def staff_list() -> None:
    """The dashboard accounts."""
    for name in _accounts_run(lambda accounts: accounts.names()):
        typer.echo(name)


def main() -> None:
    app(prog_name="python -m bot")


if __name__ == "__main__":
    main()
