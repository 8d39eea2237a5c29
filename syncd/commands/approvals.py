"""Naming approvals on the command line, the same way in every command that acts on one:
``ID [ID ...]`` (``syncd.approval.id``, as ``syncd show`` and the views print it) or
``KIND KEY [--round N]`` (one round of a business key; without ``--round`` the command
says which: the latest, or for ``cancel`` the one still on its way, or for ``show``
every round). A kind starts with a letter, so a first word of digits is an id.
"""

from __future__ import annotations

import argparse
import re

from syncd.errors import ConfigError
from syncd.pipeline.repair import Which
from syncd.settings import KIND_NAME

_ID = re.compile(r"[0-9]+")


def _round(text: str) -> int:
    if not _ID.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a round is a number from 1 (got {text!r})")
    return int(text)


def add_arguments(parser: argparse.ArgumentParser, *, many: bool, default_round: str) -> None:
    """``ID ... | KIND KEY`` (one ID unless ``many``) and ``--round N`` on ``parser``."""
    ids = "ID [ID ...]" if many else "ID"
    parser.add_argument(
        "approval",
        nargs="*",
        metavar="APPROVAL",
        help=f"{ids} (syncd.approval.id), or KIND KEY: an approval kind and a business key",
    )
    parser.add_argument(
        "--round",
        type=_round,
        metavar="N",
        help=f"with KIND KEY: this round of the key (default: {default_round})",
    )


def which_of(args: argparse.Namespace, command: str, *, many: bool) -> Which | None:
    """What ``args`` name (None: nothing, for commands that may select otherwise);
    usage errors name the command and the accepted forms."""
    words: list[str] = list(args.approval)
    forms = "ID [ID ...]" if many else "ID"
    if not words:
        if args.round is not None:
            raise ConfigError(f"{command}: --round goes with KIND KEY")
        return None
    if all(_ID.fullmatch(w) for w in words):
        if args.round is not None:
            raise ConfigError(f"{command}: --round goes with KIND KEY, not with approval ids")
        if len(words) > 1 and not many:
            raise ConfigError(f"{command}: one approval at a time: ID or KIND KEY")
        return Which(ids=tuple(int(w) for w in words))
    kind = words[0]
    if not re.match(KIND_NAME, kind):
        raise ConfigError(
            f"{command}: {kind!r} is neither an approval id (a number) nor a kind (lower-case "
            f"letters, digits and _, starting with a letter): give {forms} or KIND KEY"
        )
    if len(words) != 2:
        raise ConfigError(
            f"{command}: KIND KEY names one business key ({' '.join(words)!r} is "
            f"{len(words)} words; quote a key with spaces); several approvals go by id"
        )
    return Which(kind=kind, key=words[1], round=args.round)
