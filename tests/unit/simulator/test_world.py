"""World files: TOML and JSON, validation, the default world, the CLI's world printer."""

from __future__ import annotations

import argparse
import json
import tomllib

import pytest

from syncd.errors import ConfigError
from syncd.simulator import World
from syncd.simulator.cli import add_parser, run
from syncd.simulator.toml_out import dumps

TOML = """
[corp]
corp_id = "dingcorp"

[[apps]]
app_key = "k"
app_secret = "s"
callback_url = "http://localhost:9000/cb"

[[departments]]
dept_id = 1
name = "root"

[[users]]
user_id = "a"
name = "A"

[[users]]
user_id = "b"
name = "B"

[[templates]]
process_code = "PROC-1"
name = "Buy"

[[templates.components]]
type = "NumberField"
label = "amount"
required = true

[[templates.flow]]
approvers = ["a", "b"]
sign = "AND"

[[rules]]
process_code = "PROC-1"
field = "amount"
op = "gt"
value = "100"
decision = "refuse"
delay = 5

[limits]
qps_per_api = 5
monthly_quota = 5000

[faults]
seed = 42
error_5xx_rate = 0.1
"""


def test_load_toml_and_json(tmp_path) -> None:
    path = tmp_path / "world.toml"
    path.write_text(TOML, encoding="utf-8")
    world = World.load(path)
    assert world.corp.corp_id == "dingcorp"
    assert world.templates[0].flow[0].sign == "AND"
    assert world.limits.qps_per_api == 5 and world.faults.seed == 42
    json_path = tmp_path / "world.json"
    json_path.write_text(json.dumps(world.dump()), encoding="utf-8")
    assert World.load(json_path) == world


def test_bad_world_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "world.toml"
    path.write_text(TOML.replace('approvers = ["a", "b"]', 'approvers = ["ghost"]'))
    with pytest.raises(ConfigError, match="ghost"):
        World.load(path)
    with pytest.raises(ConfigError):
        World.load(tmp_path / "missing.toml")
    path.write_text("[corp]\nunknown_key = 1\n")
    with pytest.raises(ConfigError):
        World.load(path)


def test_default_world() -> None:
    world = World.default()
    assert len(world.apps) == 1 and len(world.users) == 12
    assert {t.process_code for t in world.templates} == {"PROC-SIM-LEAVE", "PROC-SIM-EXPENSE"}
    assert World.model_validate(tomllib.loads(dumps(world.dump()))) == world


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulator", *argv])


def test_cli_prints_the_world(capsys) -> None:
    assert run(_parse("world")) == 0
    assert World.model_validate(tomllib.loads(capsys.readouterr().out)) == World.default()
    assert run(_parse("world", "--format", "json")) == 0
    assert json.loads(capsys.readouterr().out)["corp"]["corp_id"] == "dingsimcorp0001"


def test_cli_decide_reports_unreachable(capsys) -> None:
    assert run(_parse("approve", "x", "--url", "http://127.0.0.1:9")) == 1
    assert "cannot reach" in capsys.readouterr().err


def test_the_documented_example_world_loads() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).parents[3] / "docs" / "simulator.md"
    block = re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)[0]
    world = World.model_validate(tomllib.loads(block))
    assert world.templates[0].flow[0].approvers == ["boss"]
