"""The `gpt2bot` command line. Errors are one line on stderr and a non-zero exit status."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from typing import Any

from admin.errors import AdminError
from bot import bench, cli_ab, cli_fleet, cli_learning, cli_lines, cli_ops, cli_run
from bot.chat import Finished, Origin
from bot.cli_run import CommandError, open_app
from bot.export import FORMATS, write_export, write_reviews
from bot.logs import configure_logging
from bot.params import LIMITS, InvalidRequest, parse_params, validate_prompt
from bot.settings import Settings, SettingsError
from model.backends.base import BackendError
from model.versions import ModelUnavailable
from storage import GenerationRecord, GenerationRepository, NotFound

log = logging.getLogger("gpt2bot")

# after a refusal an admin may override (the promotion gate): how to, on the command line
HOW_TO_FORCE = "To promote it anyway, run the command again with --force."
DEMO_PROMPTS = (
    "A language model is",
    "Fine-tuning a small model on your own text",
    "The attention mechanism",
)


def _add_sampling_options(parser: argparse.ArgumentParser) -> None:
    for name, (kind, low, high, _, help_text) in LIMITS.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            type=str,  # validated (with clear messages) by bot.params, not argparse
            metavar=kind.__name__.upper(),
            help=f"{help_text} ({low:g} to {high:g})",
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt2bot", description="Chat with your own fine-tuned GPT-2 and improve it."
    )
    parser.add_argument("--env-file", default=".env", help="settings file (default: .env)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="start the bot (Discord, Slack or the web playground)")
    run.add_argument(
        "--platform", help="discord, slack, web or an installed plugin (default: by tokens)"
    )
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8080)

    generate = sub.add_parser("generate", help="generate text once and store it")
    generate.add_argument("prompt")
    _add_sampling_options(generate)
    generate.add_argument("--json", action="store_true", help="print JSON")
    cli_lines.add_server_option(generate, "generate as that server is served (its model line)")

    export = sub.add_parser("export", help="export every generation with its ratings")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--out", help="file to write (default: standard output)")
    what = export.add_mutually_exclusive_group()
    what.add_argument(
        "--conversation",
        type=int,
        metavar="ID",
        help="only this conversation, in the order it was made (🔁 siblings, ⏩ children)",
    )
    what.add_argument(
        "--reviews", action="store_true", help="the owners' blind-review verdicts instead"
    )
    what.add_argument(
        "--win-rates", action="store_true", help="blind-review win rates per pair of versions"
    )

    models = sub.add_parser("models", help="list, switch, roll back or remove model versions")
    models.add_argument(
        "action",
        nargs="?",
        choices=["list", "use", "rollback", "remove", *cli_lines.LINE_ACTIONS],
        default="list",
    )
    models.add_argument("version", nargs="?")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.add_argument("--force", action="store_true", help="promote even if the gate refuses")
    cli_fleet.add_wait_options(models)
    cli_lines.add_server_option(models, "that server's own model line (enable|disable|share ...)")

    sub.add_parser("demo", help="generate from a few prompts, rate one, show how to export")
    cli_learning.add_parsers(sub)  # train, review
    cli_ops.add_parsers(sub)  # backup, restore, health
    cli_ab.add_parsers(sub)  # ab start|status|stop
    cli_fleet.add_parsers(sub)  # status
    bench.add_parser(sub)
    return parser


def _print_generation(finished: Finished, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "model_version": finished.result.model_version,
                    "prompt_truncated": finished.result.prompt_truncated,
                    "latency_s": round(finished.result.latency_s, 3),
                    "generations": [
                        {
                            "id": g.id,
                            "conversation_id": g.conversation_id,
                            "prompt": g.prompt,
                            "output": g.output,
                            "seed": g.seed,
                            "params": g.params,
                            "completion_tokens": g.completion_tokens,
                        }
                        for g in finished.generations
                    ],
                },
                ensure_ascii=False,
            )
        )
        return
    if finished.result.prompt_truncated:
        print("(the prompt was cut from the left to fit GPT-2's 1024-token context)")
    for g in finished.generations:
        print(f"{g.prompt}{g.output}")
        params = " ".join(f"{k}={v}" for k, v in g.params.items() if k != "samples")
        print(f"  [#{g.id} · model {g.model_version} · seed {g.seed} · {params}]\n")


async def _generate(settings: Settings, args: argparse.Namespace) -> int:
    raw = {name: getattr(args, name) for name in LIMITS}
    validate_prompt(args.prompt)  # bad input is told before the model is prepared
    parse_params(raw)
    app = await open_app(settings)
    try:
        origin = Origin(platform="cli", user_id="cli", serves_as=args.server)
        finished = await app.chat.generate(origin, args.prompt, raw)
    finally:
        await app.close()
    _print_generation(finished, args.json)
    return 0


async def _demo(settings: Settings, args: argparse.Namespace) -> int:
    app = await open_app(settings)
    try:
        origin = Origin(platform="cli", user_id="demo")
        first = None
        for seed, prompt in enumerate(DEMO_PROMPTS):
            finished = await app.chat.generate(origin, prompt, {"seed": seed, "max_new_tokens": 40})
            _print_generation(finished, as_json=False)
            first = first or finished.generations[0]
        assert first is not None
        await app.chat.rate(first.id, "demo", "👍")
        print(f"Rated generation #{first.id} 👍 as user 'demo'.")
        print(
            'Next: `gpt2bot generate "your prompt"`, `gpt2bot export --format csv`, '
            "`gpt2bot models list`."
        )
    finally:
        await app.close()
    return 0


async def _export(settings: Settings, args: argparse.Namespace) -> int:
    if args.reviews or args.win_rates:
        return await _export_reviews(settings, args)
    app = await open_app(settings, model="none")
    try:
        if args.conversation is not None:
            records: Iterable[GenerationRecord] = await app.chat.conversation(args.conversation)
        else:
            records = GenerationRepository(app.db).iter_all()
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as handle:
                count = await app.db.run(write_export, records, handle, args.format)
            print(f"wrote {count} generations to {args.out}", file=sys.stderr)
        else:
            await app.db.run(write_export, records, sys.stdout, args.format)
    finally:
        await app.close()
    return 0


async def _export_reviews(settings: Settings, args: argparse.Namespace) -> int:
    what = "win-rates" if args.win_rates else "verdicts"
    app = await open_app(settings, model="none")
    try:
        if args.out:
            with open(args.out, "w", newline="", encoding="utf-8") as handle:
                count = await app.db.run(write_reviews, app.db, what, handle, args.format)
            print(f"wrote {count} {what.replace('-', ' ')} to {args.out}", file=sys.stderr)
        else:
            await app.db.run(write_reviews, app.db, what, sys.stdout, args.format)
    finally:
        await app.close()
    return 0


async def _models(settings: Settings, args: argparse.Namespace) -> int:
    if args.server is not None:
        return await cli_lines.models(settings, args)
    if args.action in cli_lines.LINE_ACTIONS:
        raise CommandError(f"name the server: gpt2bot models {args.action} --server PLATFORM:ID")
    if args.action in ("use", "remove") and not args.version:
        raise CommandError(f"name the version: gpt2bot models {args.action} VERSION")
    app = await open_app(settings, model="none")
    code = 0
    try:  # through the registry: gate, atomic switch in the database, which every running
        # `gpt2bot run` follows within FOLLOW_INTERVAL_S (hot-swap)
        if args.action in ("use", "rollback"):
            if args.action == "use":
                record = await app.admin.registry.use("cli", args.version, args.force)
            else:
                record = await app.admin.registry.rollback("cli")
            said = f"The database now names {record.name} the active version."
            code = await cli_fleet.followed(app.admin, args, said)
        if args.action == "remove":  # a version nothing needs: row and folder (owners only)
            gone = await app.admin.registry.remove("cli", args.version)
            detail = {"version": gone.name, "path": gone.path}
            await app.db.run(app.gate.audit.record, "cli", "cli", "model remove", True, detail)
            print(f"Removed {gone.name} ({gone.path}).", file=sys.stderr)
        rows = await app.admin.registry.versions()
    finally:
        await app.close()
    if args.json:
        print(json.dumps([asdict(r) for r in rows], default=str))
    elif not rows:
        print("no model versions yet: `gpt2bot run` or `gpt2bot demo` prepares the first")
    for r in [] if args.json else rows:
        loss = r.metrics.get("eval_loss")
        extra = f" eval_loss={loss:.3f}" if isinstance(loss, float) else ""
        kind = f"adapter of {r.base_version}" if r.base_version else "full"
        print(
            f"{'*' if r.status == 'active' else ' '} {r.name:<24} {r.status:<9} {kind:<24} "
            f"base={r.base_model} parent={r.parent or '-'}{extra}"
        )
    return code


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Any]] = {
    "run": cli_run.run,
    "generate": _generate,
    "demo": _demo,
    "export": _export,
    "models": _models,
    "train": cli_learning.train,
    "review": cli_learning.review,
    "bench": bench.run,
    "backup": cli_ops.backup,
    "restore": cli_ops.restore,
    "health": cli_ops.health,
    "ab": cli_ab.ab,
    "status": cli_fleet.status,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(dotenv_path=args.env_file)
    except SettingsError as error:
        print(f"gpt2bot: {error.kind} {error}", file=sys.stderr)
        return 2
    # `run` reports what it does as it goes; a one-shot command's output is its answer
    configure_logging(
        settings.level("INFO" if args.command == "run" else "WARNING"), settings.log_format
    )
    try:
        outcome = COMMANDS[args.command](settings, args)
        if isinstance(outcome, Awaitable):
            outcome = asyncio.run(outcome)  # type: ignore[arg-type]
        return int(outcome)
    except SettingsError as error:  # a platform's own settings, and what connecting shows
        print(f"gpt2bot: {error.kind} {error}", file=sys.stderr)
        return 2
    except AdminError as error:  # an admin use-case's refusal, written for the person
        print(f"gpt2bot: {error.sentence(HOW_TO_FORCE)}", file=sys.stderr)
        return 1
    except (
        CommandError,
        InvalidRequest,
        BackendError,
        ModelUnavailable,
        NotFound,
        LookupError,
        OSError,
    ) as error:
        print(f"gpt2bot: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # bad names and values from our own validators
        print(f"gpt2bot: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception:
        incident = uuid.uuid4().hex[:8]
        log.exception("internal error %s", incident)
        print(f"gpt2bot: internal error {incident}; the log above has the details", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
