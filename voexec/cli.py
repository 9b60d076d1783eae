"""The `voexec` command: a root parser with the client, local and server commands mounted.

- client commands (`search`, `entry`, `publish`, `offers`, `request`, `accept`, `reject`,
  `cancel`, `session`, `watch`) speak HTTP to one server through `voexec.client`:
  `voexec/cli_client.py`;
- local commands (`reindex`, `harvest`, `vocab`) open what the settings describe:
  `voexec/cli_local.py`, over the packages' own `cli.py`;
- `serve` and `openapi` are here; `validate` is `voexec/validate/command.py`.

Each command sets `func(args) -> int`; only `main()` turns errors into exit codes. Building the
parser imports argparse and our light modules only: Litestar, SQLAlchemy, tantivy, rdflib and
httpx are imported by the command that needs them, so `voexec --help` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from litestar import Litestar

    from core.settings import Settings

EX_CONFIG = 78


SETTINGS_ENV = "_VOEXEC_WORKER_SETTINGS"
"""Where `voexec serve --workers N` hands each worker process the settings it resolved (not a
`VOEXEC_*` name: those are settings overrides, which `load_settings` would read)."""


def _serve(args: argparse.Namespace) -> int:
    import logging
    import os

    import msgspec
    import uvicorn

    from core.settings import load_settings
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
    workers = args.workers
    print(f"voexec serving on http://{host}:{port} ({workers} worker(s))", flush=True)
    # httptools and uvloop (uvicorn[standard]) parse and schedule in C; "auto" takes them.
    options: dict[str, Any] = {"http": "auto", "loop": "auto", "access_log": False}
    if workers == 1:
        uvicorn.run(
            with_frozen_heap(create_app(settings)),
            host=host,
            port=port,
            log_level=settings.log_level.lower(),
            **options,
        )
        return 0
    # Several processes over one database: every worker builds the app from the settings
    # resolved here (the command line and --demo included), through the factory below. The
    # database is migrated once, here, so that the workers do not race on it.
    from voexec.wiring import build_services

    build_services(settings).stop()
    os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
    # The rate-limit buckets of every worker: one table, made before they start (they are
    # spawned, so they find it by its path).
    from pathlib import Path

    from voexec.shared_limits import ENV, create_table

    os.environ[ENV] = str(create_table(Path(settings.data_dir) / "rate-limits.table"))
    uvicorn.run(
        "voexec.cli:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level=settings.log_level.lower(),
        **options,
    )
    return 0


def worker_app() -> Litestar:
    """The app of one worker process of `voexec serve --workers N` (uvicorn's factory)."""
    import os
    from pathlib import Path

    import msgspec

    from core.settings import Settings
    from voexec.app import create_app
    from voexec.security import share_rate_limits
    from voexec.shared_limits import ENV, SharedBuckets
    from voexec.wiring import build_services

    settings = msgspec.json.decode(os.environ[SETTINGS_ENV], type=Settings)
    services = build_services(settings)
    if ENV in os.environ:
        share_rate_limits(services, SharedBuckets(Path(os.environ[ENV])))
    return with_frozen_heap(create_app(settings, services))


def freeze_heap() -> None:
    """Move what start-up built (modules, vocabularies, the app) out of garbage collections.

    Those objects live as long as the process; without this, every full collection walks them
    again. Run last at start-up, so the services' own start is included.
    """
    import gc

    gc.collect()
    gc.freeze()


SWITCH_INTERVAL: Final = 0.001
"""Seconds a thread runs before another waiting for the GIL may take it (Python's default is
0.005). The event loop answers reads while writes compute in worker threads: each time a read
gives up the GIL (a socket, a SQLite call) it may wait this long to get it back."""


def shorten_switch_interval() -> None:
    """Let reads on the event loop wait less for the GIL (see `SWITCH_INTERVAL`)."""
    if sys.getswitchinterval() > SWITCH_INTERVAL:
        sys.setswitchinterval(SWITCH_INTERVAL)


def with_frozen_heap(app: Litestar) -> Litestar:
    """`app`, tuned once started: a shorter GIL switch interval, the heap frozen."""
    app.on_startup.extend([shorten_switch_interval, freeze_heap])
    return app


async def _started_document(app: Litestar) -> dict[str, Any]:
    # The broker adds its request and response schemas at start-up, so the document is read
    # between the app's start and stop, exactly as a running server would serve it.
    async with app.lifespan():
        return app.openapi_schema.to_schema()


def openapi_document(settings: Settings) -> dict[str, Any]:
    """The OpenAPI document the app built from `settings` serves at /schema/openapi.json."""
    import asyncio

    from voexec.app import create_app

    return asyncio.run(_started_document(create_app(settings)))


def _openapi(args: argparse.Namespace) -> int:
    import logging
    import tempfile

    import msgspec
    import yaml

    from core.settings import load_settings

    # stdout carries the document; warnings about data it does not depend on (vocabularies not
    # cached while offline) would only be noise on stderr.
    logging.basicConfig(level=logging.ERROR)
    settings = load_settings(args.config)
    with tempfile.TemporaryDirectory(prefix="voexec-openapi-") as data_dir:
        # Printing the document must leave no database or index behind, nor wait on the
        # network: a throwaway data directory and the vocabularies shipped with voexec.
        settings = msgspec.structs.replace(
            settings,
            data_dir=data_dir,
            vocabularies=msgspec.structs.replace(settings.vocabularies, offline=True),
        )
        document = openapi_document(settings)
    if args.yaml:
        # Plain YAML, as /schema/openapi.yaml serves it: JSON types only, keys in document order.
        plain = msgspec.json.decode(msgspec.json.encode(document))
        sys.stdout.write(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(msgspec.json.format(msgspec.json.encode(document), indent=2).decode())
        sys.stdout.write("\n")
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


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
    serve.add_argument(
        "--workers",
        type=_positive,
        default=1,
        help="worker processes sharing the port and the database (default: 1)",
    )
    serve.set_defaults(func=_serve)

    openapi = commands.add_parser(
        "openapi", help="print the OpenAPI document (JSON) without starting a server"
    )
    openapi.add_argument(
        "--config",
        help="YAML settings file (default: $VOEXEC_CONFIG); its data_dir is not touched",
    )
    openapi.add_argument("--yaml", action="store_true", help="print YAML instead of JSON")
    openapi.set_defaults(func=_openapi)

    from voexec.validate.command import register as register_validate

    register_validate(commands)

    from voexec import cli_client, cli_local, cli_token

    cli_client.register(commands)
    cli_local.register(commands)
    cli_token.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from core.errors import ConfigError, DomainError, Invalid

    try:
        return int(args.func(args))
    except ConfigError as error:
        print(f"voexec: configuration error: {error.message}", file=sys.stderr)
        return EX_CONFIG
    except DomainError as error:
        print(f"voexec: {error.message}", file=sys.stderr)
        for problem in error.problems if isinstance(error, Invalid) else ():
            hint = (
                f" (did you mean: {', '.join(problem.suggestions)}?)" if problem.suggestions else ""
            )
            print(f"  {problem.field}: {problem.reason}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
