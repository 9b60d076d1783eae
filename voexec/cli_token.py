"""`voexec token new NAME [--role ROLE]`: make a token, print it once and the settings entry.

The token is shown once, on standard output, and never stored: only its SHA-256 goes into the
settings (`auth.tokens`), so the printed entry is what to paste and the token is what to hand
to its holder (who sets it as `VOEXEC_TOKEN` or pastes it at `/sign-in`). Imports nothing heavy:
`voexec --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, get_args

__all__ = ["register"]


def _new(args: argparse.Namespace) -> int:
    import msgspec

    from core.auth import new_token, token_sha256
    from core.settings import NamedToken

    token = new_token()
    try:
        entry = msgspec.convert(
            {"name": args.name, "sha256": token_sha256(token), "role": args.role}, NamedToken
        )
    except msgspec.ValidationError as error:
        sys.stderr.write(
            f"voexec token new: the name {args.name!r} cannot be used: {error}\n"
            "  a name starts with a letter or digit and has at most 64 letters, digits, "
            "'.', '_', '@' or '-'\n"
        )
        return 2
    out = sys.stdout
    out.write(f"token for {entry.name} (shown once; hand it over privately):\n\n  {token}\n\n")
    out.write("add this entry under auth.tokens in the settings, then restart voexec:\n\n")
    out.write("auth:\n  tokens:\n")
    out.write(f"    - {{name: {entry.name}, sha256: {entry.sha256}, role: {entry.role}}}\n")
    return 0


def register(commands: argparse._SubParsersAction[Any]) -> None:
    """Mount `voexec token new` on the root parser's commands."""
    from core.settings import Role

    token = commands.add_parser("token", help="make named tokens for auth.tokens")
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    new = actions.add_parser(
        "new",
        help="make a token: prints it once, and the settings entry (its hash) to paste",
        description="Make a random token for NAME. The token is printed once; only its SHA-256 "
        "goes into the settings.",
    )
    new.add_argument("name", help="who holds it (recorded as the owner of what it asks for)")
    new.add_argument(
        "--role",
        choices=get_args(Role),
        default="researcher",
        help="researcher (run; the default), packager (also publish), operator (everything)",
    )
    new.set_defaults(func=_new)
