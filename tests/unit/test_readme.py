from __future__ import annotations

from pathlib import Path

from syncd.settings import Settings
from syncd.settings_kinds import KindSettings, WriteBackSettings

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = readme.split("```sh\n", 1)[1].split("\n```", 1)[0].strip()
    ci_lines = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines.count(command) == 1


def test_the_demo_command_does_not_undo_the_test_install_and_ci_runs_it():
    readme = (ROOT / "README.md").read_text()
    test, demo = (block.split("\n```", 1)[0].strip() for block in readme.split("```sh\n")[1:3])
    assert demo.endswith("syncd demo")
    venvs = [command.split("python3 -m venv ", 1)[1].split()[0] for command in (test, demo)]
    assert venvs[0] != venvs[1]
    assert "bash .ci/newcomer" in (ROOT / ".ci" / "run").read_text().splitlines()


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = []
    for model in (Settings, KindSettings, WriteBackSettings):
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and hasattr(sub, "model_fields"):
                missing += [f"{name}.{n}" for n in sub.model_fields if not _documented(n, readme)]
            elif not _documented(name, readme):
                missing.append(name)
    assert missing == []


def _documented(name: str, readme: str) -> bool:
    forms = (f"{name} =", f"{name}_file =", f".{name}]", f"[{name}.")
    return any(form in readme for form in forms)
