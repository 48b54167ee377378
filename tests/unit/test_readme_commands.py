"""README's command blocks against the CLI (issue 10): the tour's blocks parse into commands
the harness can run, and every `envplane` command written in any README block names a
command and options that exist — a README that drifts from the tool fails here, in
seconds, before the e2e tour runs it (tests/e2e/test_readme_tour.py)."""

from __future__ import annotations

import re
import shlex

import pytest
import typer.main
from typer.core import TyperGroup
from typer.exceptions import TyperException

from envplane.cli.main import app
from tests import tour_kit

TEXT = tour_kit.README.read_text(encoding="utf-8")
SEPARATORS = {"&&", "||", "|", ";"}


def all_blocks() -> list[tour_kit.Block]:
    """Every ```bash block of the README, with the line it starts on."""
    return [b for heading in re.findall(r"^## .+$", TEXT, flags=re.M)
            for b in tour_kit.bash_blocks(TEXT, heading)]


def invocations() -> list[tuple[int, list[str]]]:
    """(README line, the words after `envplane`) for every envplane command in a bash block."""
    found = []
    for block in all_blocks():
        for offset, line in enumerate(block.text.splitlines()):
            code, _ = tour_kit.split_comment(line)
            if "envplane" not in code or code.lstrip().startswith(("cd ", "export ", "cat ", "echo ")):
                continue
            words = shlex.split(code.replace("[", " ").replace("]", " "))
            current: list[str] | None = None
            for word in [*words, ";"]:
                if word in SEPARATORS:
                    if current is not None:
                        found.append((block.line + offset, current))
                    current = None
                elif current is not None:
                    current.append(word)
                elif word == "envplane":
                    current = []
    return found


def test_the_tour_is_there_and_parses_into_commands() -> None:
    blocks = tour_kit.bash_blocks(TEXT)
    commands = [c for b in blocks for c in tour_kit.commands(b)]
    assert [b.teardown for b in blocks] == [False, False, True]
    texts = [c.text for c in commands]
    assert any(c.blocking for c in commands), "envplane up local runs until Ctrl-C"
    assert any(t.startswith("cat >>envplane.yaml <<'EOF'") and t.endswith("EOF") for t in texts)
    assert [c.exit_code for c in commands if c.exit_code] == [1]  # the refused promote
    assert all(c.shows for c in commands if c.text.startswith("curl"))


def test_the_tours_versions_are_those_of_a_fresh_clone() -> None:
    """No tags and no releases yet: the first release is v1.0.0, the next v1.0.1."""
    tour = "\n".join(b.text for b in tour_kit.bash_blocks(TEXT))
    versions = set(re.findall(r"v\d+\.\d+\.\d+", tour))
    assert versions == {"v1.0.0", "v1.0.1"}, versions


def cases() -> list[object]:
    return [pytest.param(line, words) for line, words in invocations()]


def parse(words: list[str]) -> None:
    """Parse `envplane WORDS` as the CLI would, down to the command's own arguments and
    options, without running it: an unknown command or option, a missing or extra argument,
    or a value of the wrong type raises the CLI's own usage error."""
    command = typer.main.get_command(app)
    ctx = command.context_class(command, info_name="envplane")
    rest = list(words)
    while isinstance(command, TyperGroup):
        name, sub, rest = command.resolve_command(ctx, rest)
        assert name is not None and sub is not None
        command = sub
        ctx = command.context_class(command, info_name=name, parent=ctx)
    command.make_context(ctx.info_name, rest, parent=ctx.parent)


@pytest.mark.parametrize(("line", "words"), cases(), ids=lambda v: str(v) if isinstance(v, int) else None)
def test_every_envplane_command_in_readme_exists(line: int, words: list[str]) -> None:
    try:
        parse(words)
    except TyperException as exc:  # the CLI's usage errors (click's, as Typer ships them)
        pytest.fail(f"README.md:{line}: envplane {' '.join(words)}: {exc}")


def test_the_drift_check_finds_a_wrong_flag_or_argument() -> None:
    """The check above can fail: a flag envplane lacks (issue 10.9: `pass --wait`), an extra
    argument, a value of the wrong type and an unknown command are each caught."""
    parse(["up", "staging", "--no-wait"])
    parse(["platform", "down", "docker", "staging", "--purge"])
    for wrong in (["up", "staging", "--wait"], ["plan", "staging", "production"], ["preview", "up", "--pr", "N"],
                  ["platfrom", "up", "docker"]):
        with pytest.raises(TyperException):
            parse(wrong)
