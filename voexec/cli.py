"""The `voexec` command: a root parser onto which each package mounts its commands.

Each package's `cli.py` exposes `register(subparsers)`; each command sets `func(args) -> int`.
Only `main()` turns errors into exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import msgspec

from core.errors import ConfigError, DomainError
from core.settings import load_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from voexec.app import create_app

    settings = load_settings(args.config)
    if args.demo:
        from voexec.demo import with_demo

        settings = with_demo(settings)
    host = args.host or settings.server.host
    port = args.port if args.port is not None else settings.server.port
    # The settings say where voexec listens: the registry names its base URL from them when
    # `server.public_url` is not set, so they must match the command line.
    settings = msgspec.structs.replace(
        settings, server=msgspec.structs.replace(settings.server, host=host, port=port)
    )
    logging.basicConfig(level=settings.log_level)
    app = create_app(settings)
    print(f"voexec serving on http://{host}:{port}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level.lower())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The root parser with every package's commands mounted."""
    parser = argparse.ArgumentParser(
        prog="voexec", description="Catalogue of astronomy executables and IVOA Execution Broker."
    )
    parser.add_argument("--version", action="version", version="voexec 0.1.0")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the web service")
    serve.add_argument("--config", help="YAML settings file (default: $VOEXEC_CONFIG)")
    serve.add_argument("--host", help="interface to bind (default: server.host)")
    serve.add_argument("--port", type=int, help="port (default: server.port)")
    serve.add_argument(
        "--demo", action="store_true", help="load the demo catalogue and three simulated platforms"
    )
    serve.set_defaults(func=_serve)

    from voexec.wiring import PARTS

    for part in PARTS:
        part.register_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"voexec: configuration error: {error.message}", file=sys.stderr)
        return 78  # EX_CONFIG
    except DomainError as error:
        print(f"voexec: {error.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
