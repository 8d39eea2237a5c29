"""Parsing the command line: the global options before or after every command, and one
way of naming approvals (``ID ...`` or ``KIND KEY [--round N]``) in every command."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncd.cli import build_parser, main
from syncd.commands import approvals
from syncd.errors import ConfigError
from syncd.pipeline.repair import Which
from syncd.settings import KIND_NAME


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command: its words after ``syncd`` and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
    for sub in subs:
        for name, child in sub.choices.items():
            yield from leaves(child, (*path, name))


def minimal(parser: argparse.ArgumentParser) -> list[str]:
    """The fewest words a command parses with: its required positionals and options."""
    words: list[str] = []
    for action in parser._actions:
        value = str(next(iter(action.choices))) if action.choices else "1"
        if not action.option_strings and action.nargs in (None, 1, "+"):
            words.append(value)
        elif action.option_strings and action.required:
            words += [action.option_strings[0], value]
    return words


COMMANDS = sorted(leaves(build_parser()))
GLOBALS = ["--config", "c.toml", "--log-format", "json", "--log-level", "debug"]


def test_every_command_is_found():
    names = {path for path, _ in COMMANDS}
    assert {("status",), ("dismiss",), ("capture", "add"), ("simulator", "serve")} <= names
    assert len(names) >= 20


@pytest.mark.parametrize(("path", "parser"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_global_options_go_before_or_after_every_command(path, parser):
    words = [*path, *minimal(parser)]
    for argv in ([*GLOBALS, *words], [*words, *GLOBALS], [*GLOBALS[:2], *words, *GLOBALS[2:]]):
        args = build_parser().parse_args(argv)
        assert (args.config, args.log_format, args.log_level) == ("c.toml", "json", "DEBUG")
    # Given twice, the one after the command wins; given never, there is none.
    args = build_parser().parse_args(["--config", "a.toml", *words, "--config", "b.toml"])
    assert args.config == "b.toml"
    args = build_parser().parse_args(words)
    assert all(getattr(args, name, None) is None for name in ("config", "log_format", "log_level"))


def test_a_bad_global_option_after_the_command_is_a_usage_error(capsys):
    assert main(["status", "--log-level", "chatty"]) == 2
    assert "invalid choice: 'CHATTY'" in capsys.readouterr().err


def parse(command: str, *words: str) -> argparse.Namespace:
    return build_parser().parse_args([command, *words])


NAMING = ["show", "cancel", "retry", "dismiss", "replay"]
ids = st.lists(st.integers(min_value=1, max_value=10**12), min_size=1, max_size=5)
kinds = st.from_regex(KIND_NAME, fullmatch=True)
keys = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40).filter(
    lambda k: not k.startswith("-")
)
rounds = st.none() | st.integers(min_value=1, max_value=10_000)


def extra(command: str) -> list[str]:
    return ["--reason", "why"] if command == "dismiss" else []


@given(command=st.sampled_from(NAMING), numbers=ids)
def test_ids_name_approvals_in_every_command(command, numbers):
    many = command in ("retry", "dismiss", "replay")
    args = parse(command, *map(str, numbers), *extra(command))
    if many or len(numbers) == 1:
        assert approvals.which_of(args, command, many=many) == Which(ids=tuple(numbers))
    else:
        with pytest.raises(ConfigError, match="one approval at a time"):
            approvals.which_of(args, command, many=many)


@given(command=st.sampled_from(NAMING), kind=kinds, key=keys, round_=rounds)
def test_kind_and_key_name_a_round_in_every_command(command, kind, key, round_):
    words = [kind, key, *extra(command)]
    if round_ is not None:
        words += ["--round", str(round_)]
    args = parse(command, *words)
    which = approvals.which_of(args, command, many=command != "show")
    assert which == Which(kind=kind, key=key, round=round_)


@given(command=st.sampled_from(NAMING), first=st.text(min_size=1, max_size=20), rest=keys)
def test_anything_else_is_a_usage_error_naming_the_forms(command, first, rest):
    if re.fullmatch("[0-9]+", first) or re.match(KIND_NAME, first) or first.startswith("-"):
        return
    args = parse(command, first, rest, *extra(command))
    with pytest.raises(ConfigError, match=f"^{command}: .* give .*KIND KEY"):
        approvals.which_of(args, command, many=True)


def test_round_goes_with_kind_and_key_only():
    with pytest.raises(ConfigError, match="--round goes with KIND KEY, not with approval ids"):
        approvals.which_of(parse("retry", "12", "--round", "2"), "retry", many=True)
    with pytest.raises(ConfigError, match="KIND KEY names one business key"):
        approvals.which_of(parse("retry", "leave", "1", "2"), "retry", many=True)
    assert main(["show", "leave", "1", "--round", "0"]) == 2
