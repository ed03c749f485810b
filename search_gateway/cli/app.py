"""The `imgsearch` parser, built from the gateway settings, and `main`.

Each command lives in its own module (`*_cmd.py`, `demo.py`) and registers
its sub-parser through `add_commands`; this module only wires them together
and turns errors into one line on stderr and an exit code.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic.fields import FieldInfo

from imgsearch.errors import ImgsearchError
from imgsearch.serving.logs import configure_logging
from search_gateway import domain as d
from search_gateway.cli import (
    admin_cmd,
    connect,
    daemon,
    demo,
    index_cmd,
    search_cmd,
    serve_cmd,
    shutdown,
    ui_cmd,
    video_cmd,
)
from search_gateway.cli.connect import NoIndex, settings_from
from search_gateway.cli.shutdown import EXIT_INTERRUPTED
from search_gateway.settings import FLAT_NAMES, GatewaySettings

# flag -> (settings keyword, metavar); help text and env name come from the settings.
_SETTING_OPTIONS: list[tuple[str, str, str | None]] = [
    ("--data-dir", "data_dir", None),
    ("--collection", "collection", None),
    ("--qdrant-url", "qdrant_url", None),
    ("--model", "model", None),
    ("--pretrained", "pretrained", None),
    ("--caption-model", "caption_model", None),
    ("--device", "device", None),
    ("--embedder", "embedder_address", "HOST:PORT"),
    ("--captioner", "captioner_address", "HOST:PORT"),
]


def setting_help(name: str) -> str:
    """'<description> [IMGSEARCH_<ENV>]' for a GatewaySettings keyword."""
    fields = GatewaySettings.model_fields
    if name in fields:
        info: FieldInfo = fields[name]
        env = f"IMGSEARCH_{name.upper()}"
    else:
        section, sub = FLAT_NAMES[name][0]
        annotation = fields[section].annotation
        assert annotation is not None
        info = annotation.model_fields[sub]
        env = f"IMGSEARCH_{section.upper()}_{sub.upper()}"
    default = info.get_default(call_default_factory=True)
    shown = f"; default {default}" if default not in (None, "") else ""
    return f"{info.description or name}{shown} [{env}]"


def _connection_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    default = argparse.SUPPRESS if suppress else None
    g = p.add_argument_group("where the index lives")
    g.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=default,
        help="use a running gateway instead of the embedded engine",
    )
    g.add_argument(
        "--api-key", default=default, help="key for the gateway [IMGSEARCH_GATEWAY_API_KEY]"
    )
    g.add_argument(
        "--tls-ca",
        default=default,
        help="CA (PEM) to trust for a TLS gateway [IMGSEARCH_GATEWAY_TLS_CA]",
    )
    for flag, name, metavar in _SETTING_OPTIONS:
        dest = flag[2:].replace("-", "_")
        g.add_argument(flag, dest=dest, default=default, metavar=metavar, help=setting_help(name))
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0)
    g.add_argument(
        "--warm",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="run this and later commands in a warm background daemon (model loaded, index "
        "open; exits when idle) [IMGSEARCH_WARM=1]",
    )
    g.add_argument(
        "--warm-idle",
        type=float,
        metavar="SECONDS",
        default=argparse.SUPPRESS if suppress else daemon.DEFAULT_IDLE_S,
        help="idle time after which the warm daemon exits",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgsearch",
        description="Natural-language image search: index folders, search by text, image or id.",
    )
    _connection_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _connection_options(p, suppress=True)
        return p

    for module in (index_cmd, search_cmd, admin_cmd, serve_cmd, ui_cmd, video_cmd):
        module.add_commands(sub, command)
    _add_daemon_command(sub, command)
    demo.add_commands(sub, run_cli=main)
    return parser


# Commands a warm daemon may run (the rest start servers or run in-process).
DAEMON_COMMANDS = frozenset({"index", "recaption", "query", "similar", "get", "delete", "stats"})
# Commands that open the index once and mostly only read it (see connect.ends_process).
READ_COMMANDS = frozenset({"query", "similar", "get", "delete", "stats"})


def main(argv: Sequence[str] | None = None) -> int:
    """The `imgsearch` command. Run as the process (argv None), it ends with
    os._exit once its output is flushed: the interpreter's own teardown
    (joining idle executor threads, gRPC and torch finalisers) took seconds,
    longer than many commands themselves. Called with argv (the demo, tests)
    it returns the exit code instead."""
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    remote = _via_daemon(args)
    if argv is None and args.command in READ_COMMANDS:
        connect.ends_process()
    code = daemon.run_remote(remote, raw) if remote is not None else run_command(args)
    if argv is None or code == EXIT_INTERRUPTED:
        shutdown.finish(code)
    return code


def _via_daemon(args: argparse.Namespace) -> socket.socket | None:
    """A connection to the warm daemon that should run this command, if any."""
    if args.command not in DAEMON_COMMANDS or args.gateway:
        return None
    data_dir = settings_from(args).data_dir
    sock = daemon.connect(daemon.socket_path(data_dir))
    warm = args.warm or os.environ.get("IMGSEARCH_WARM", "").lower() in ("1", "true", "yes")
    if sock is None and warm:
        sock = daemon.start_daemon(data_dir, args.warm_idle)
    return sock


def run_command(args: argparse.Namespace) -> int:
    """Runs a parsed command; errors become one line on stderr and an exit code."""
    level = (
        "DEBUG"
        if args.verbose >= 2
        else "INFO"
        if args.verbose or args.command in ("serve", "daemon", "ui")
        else "WARNING"
    )
    configure_logging(level)
    func: Callable[[argparse.Namespace], Any] = args.func
    if getattr(args, "sync", False):
        return int(func(args))
    return int(shutdown.run(lambda: handle_errors(args, func(args))))


async def handle_errors(args: argparse.Namespace, command: Awaitable[Any]) -> int:
    """Awaits a command; its errors become one line on stderr and an exit code."""
    try:
        return int(await command)
    except NoIndex as exc:
        print(f"imgsearch: {exc}", file=sys.stderr)
        return 1
    except d.InvalidFilter as exc:  # includes FilterSyntaxError with its caret line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImgsearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2 if exc.status_name == "INVALID_ARGUMENT" else 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `imgsearch ... | head`: the reader has all it wants
        shutdown.finish(0)
        return 0
    except Exception as exc:  # a bug or an unforeseen failure: one line, -v for more
        if args.verbose:
            raise
        print(f"error: {type(exc).__name__}: {exc} (run with -v for the details)", file=sys.stderr)
        return 1


async def run_daemon(args: argparse.Namespace) -> int:
    if args.action != "run":
        return daemon.control(settings_from(args).data_dir, {args.action: True})
    connect.keep_cores()
    path = daemon.socket_path(settings_from(args).data_dir)
    parser = build_parser()

    async def run(parsed: argparse.Namespace) -> int:
        return await handle_errors(parsed, parsed.func(parsed))

    await daemon.Daemon(path, args.idle, parser.parse_args, run).serve()
    return 0


def _add_daemon_command(sub: argparse._SubParsersAction, command: Any) -> None:  # type: ignore[type-arg]
    p = command("daemon", "the warm local daemon (see --warm): run, stop or status")
    p.add_argument("action", nargs="?", choices=["run", "stop", "status"], default="run")
    p.add_argument(
        "--idle",
        type=float,
        default=daemon.DEFAULT_IDLE_S,
        help="exit after this many seconds without a command"
        f" (default {daemon.DEFAULT_IDLE_S:.0f})",
    )
    p.set_defaults(func=run_daemon)
