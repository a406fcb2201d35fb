"""Scenario-file errors read like settings-file errors: one line per problem, with file, line and key path.

No pydantic dump (``type=extra_forbidden``, links to pydantic's site), no YAML traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from midstream.cli import app
from midstream.sim import ScenarioBook, ScenarioError

GOOD_TURN = "    turns:\n      - blocks:\n          - text: Hello\n"


def load_error(tmp_path: Path, text: str, name: str = "book.yaml") -> ScenarioError:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        ScenarioBook.load(path)
    return caught.value


def test_an_unknown_key_names_its_line_and_key_path(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        "scenarios:\n"
        "  - name: weather\n"
        "    turns:\n"
        "      - blocks:\n"
        "          - text: Let me check.\n"
        "          - tool_cal: {name: get_weather}\n",
    )
    assert str(error) == f"{tmp_path / 'book.yaml'}:6: scenarios[0].turns[0].blocks[1].tool_cal: unknown key"
    assert error.problems == [(6, "scenarios[0].turns[0].blocks[1].tool_cal", "unknown key")]


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        "scenarios:\n"
        "  - name: a\n"
        "    latency: {ttft_ms: fast}\n" + GOOD_TURN + "  - turns:\n"
        "      - blocks: [{text: hi}]\n"
        "    colour: red\n",
    )
    source = tmp_path / "book.yaml"
    lines = str(error).splitlines()
    assert lines[0] == f"invalid scenario file {source}"
    assert f"  {source}:3: scenarios[0].latency.ttft_ms: Input should be a valid number" in lines[1]
    assert "(got 'fast')" in lines[1]
    assert f"  {source}:7: scenarios[1].name: Field required" in lines
    assert f"  {source}:9: scenarios[1].colour: unknown key" in lines
    assert len(lines) == 4


def test_no_pydantic_dump_in_any_message(tmp_path: Path) -> None:
    error = load_error(tmp_path, "scenarios:\n  - name: a\n    turns: []\n    bogus: 1\n")
    text = str(error).replace(str(tmp_path), "TMP")  # the test's own directory name says pydantic
    assert "pydantic" not in text and "type=" not in text and "https://" not in text
    assert "For further information" not in text


def test_a_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, "scenarios:\n  - name: a\n    turns: [\n      oops: {\n")
    assert str(error).startswith(f"{tmp_path / 'book.yaml'}:")
    assert "invalid YAML" in str(error) and "Traceback" not in str(error)
    assert error.problems[0][0] is not None


def test_a_json_file_gets_lines_too(tmp_path: Path) -> None:
    error = load_error(
        tmp_path,
        '{"scenarios": [\n  {"name": "a",\n   "turns": [{"blocks": [{"txt": "x"}]}]}\n]}\n',
        "book.json",
    )
    assert str(error) == f"{tmp_path / 'book.json'}:3: scenarios[0].turns[0].blocks[0].txt: unknown key"


def test_a_json_syntax_error_names_its_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, '{"scenarios": [\n  {"name": "a",}\n]}\n', "book.json")
    assert str(error).startswith(f"{tmp_path / 'book.json'}:2: invalid JSON")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        ScenarioBook.load(tmp_path / "nope.yaml")
    assert str(caught.value).startswith(f"{tmp_path / 'nope.yaml'}: cannot read the file")


def test_the_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    error = load_error(tmp_path, "- name: a\n")
    assert str(error).startswith(f"{tmp_path / 'book.yaml'}:1: ")


def test_the_cli_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - name: a\n    turns: [{blocks: [{text: hi}]}]\n    colour: red\n")
    result = CliRunner().invoke(app, ["sim", "--scenarios", str(bad)])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {bad}:4: scenarios[0].colour: unknown key"
