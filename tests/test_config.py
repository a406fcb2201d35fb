"""The settings file: defaults, both formats, the example files, and errors that name file and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from midstream.config import (
    HOOK_EVENTS,
    BackoffSettings,
    ErrorSettings,
    Settings,
    SettingsError,
    StreamingSettings,
    find_settings,
    load_settings,
)
from midstream.errors import LocalError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_defaults() -> None:
    s = Settings()
    assert s.streaming.enabled is True
    assert s.streaming.enable_for_agents is None
    assert s.errors.invalid_json_wrapper == "INVALID_JSON"
    assert s.errors.retry_on_incomplete is True
    assert s.errors.max_retries == 2
    assert s.errors.eager_fallback_after == 1
    assert (s.errors.backoff.initial, s.errors.backoff.factor, s.errors.backoff.scale) == (2.0, 2.0, 1.0)
    assert s.hooks == {}
    assert s.tools.max_concurrency == 4
    assert s.agent.max_iterations == 10


def test_backoff_two_then_four_seconds_and_scaled() -> None:
    b = BackoffSettings()
    assert [b.delay(n) for n in range(3)] == [2.0, 4.0, 8.0]
    assert BackoffSettings(max=5.0).delay(10) == 5.0
    fast = BackoffSettings(scale=0.001)
    assert fast.delay(0) == pytest.approx(0.002)
    assert fast.delay(1) == pytest.approx(0.004)
    assert BackoffSettings().delay(10_000) == 30.0  # no overflow
    with pytest.raises(LocalError):
        b.delay(-1)


def test_error_helpers() -> None:
    e = ErrorSettings(invalid_json_wrapper="BAD")
    assert e.wrap_invalid('{"a": ') == {"BAD": '{"a": '}
    assert ErrorSettings().next_max_tokens(100) == 200
    assert ErrorSettings(max_tokens_cap=150).next_max_tokens(100) == 150
    assert ErrorSettings(max_tokens_growth=1.0).next_max_tokens(100) == 101  # always grows
    assert ErrorSettings(max_tokens_cap=50).next_max_tokens(100) == 100  # never shrinks


def test_eager_resolution() -> None:
    s = StreamingSettings.model_validate(
        {
            "eager": {"default": False, "tools": {"write_file": True, "search": False}},
            "enable_for_agents": ["coder"],
        }
    )
    assert s.eager_for("write_file", agent="coder") is True
    assert s.eager_for("write_file", agent="reviewer") is False  # not an enabled agent
    assert s.eager_for("write_file") is False
    assert s.eager_for("other", agent="coder") is False
    assert s.eager_for("other", agent="coder", tool_default=True) is True  # the tool's own option
    assert s.eager_for("search", agent="coder", tool_default=True) is False  # settings win
    everyone = StreamingSettings.model_validate({"eager": True})  # shorthand for the default
    assert everyone.eager_for("anything", agent="x") is True
    star = StreamingSettings.model_validate({"eager": True, "enable_for_agents": ["*"]})
    assert star.eager_for("t", agent="whoever") is True
    off = StreamingSettings.model_validate({"enabled": False, "eager": True})
    assert off.eager_for("t") is False


def test_example_files_validate_and_agree() -> None:
    toml = load_settings(EXAMPLES / "midstream.toml")
    from_json = load_settings(EXAMPLES / "midstream.json")
    assert toml == from_json
    assert toml.streaming.eager_for("write_file", agent="coder") is True
    assert toml.errors.max_retries == 2
    assert toml.errors.backoff.delay(0) == 2.0
    assert [h.matcher for h in toml.hooks["PreToolUse"]] == ["write_file|delete_file"]
    assert toml.metrics.ttft_ms_warn == 2000
    assert toml.agent.name == "coder"


def test_toml_and_json_same_content(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(
        "[errors]\nmax_retries = 5\n[errors.backoff]\nscale = 0.001\n"
        '[[hooks.PreToolUse]]\nmatcher = "w.*"\ncommand = "true"\ntimeout = 1.5\n'
    )
    data = {
        "errors": {"max_retries": 5, "backoff": {"scale": 0.001}},
        "hooks": {"PreToolUse": [{"matcher": "w.*", "command": "true", "timeout": 1.5}]},
    }
    (tmp_path / "a.json").write_text(json.dumps(data))
    a, b = load_settings(tmp_path / "a.toml"), load_settings(tmp_path / "a.json")
    assert a == b
    assert a.errors.max_retries == 5
    assert a.hooks["PreToolUse"][0].timeout == 1.5


def _problems(tmp_path: Path, name: str, text: str) -> SettingsError:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SettingsError) as info:
        load_settings(path)
    return info.value


def test_errors_name_the_file_and_key_path(tmp_path: Path) -> None:
    err = _problems(
        tmp_path,
        "bad.toml",
        "[errors]\nmax_retries = -1\nbackof = 3\n[errors.backoff]\ninitial = 'soon'\n"
        "[[hooks.PreToolUse]]\ncommand = 'x'\ntimeout = 0\n"
        "[[hooks.PreToolUse]]\nmatcher = '('\ncommand = 'y'\n",
    )
    paths = [p for p, _ in err.problems]
    assert paths == [
        "errors.max_retries",
        "errors.backoff.initial",
        "errors.backof",
        "hooks.PreToolUse[0].timeout",
        "hooks.PreToolUse[1].matcher",
    ]
    text = str(err)
    assert f"{tmp_path / 'bad.toml'}: errors.max_retries: " in text
    assert "errors.backof: unknown key" in text
    assert "(got -1)" in text
    assert "not a valid regular expression" in text


def test_unknown_hook_event_and_top_level_key(tmp_path: Path) -> None:
    err = _problems(tmp_path, "s.json", json.dumps({"hooks": {"BeforeTool": []}, "streamin": {}}))
    assert [p for p, _ in err.problems] == ["hooks.BeforeTool", "streamin"]
    assert "unknown hook event 'BeforeTool'" in str(err)
    for name in HOOK_EVENTS:
        assert name in str(err)


def test_syntax_errors(tmp_path: Path) -> None:
    err = _problems(tmp_path, "s.json", '{"errors": {"max_retries": 2,}}')
    assert "invalid JSON at line 1" in str(err)
    assert str(tmp_path / "s.json") in str(err)
    err = _problems(tmp_path, "s.toml", "[errors\nmax_retries = 2\n")
    assert "invalid TOML" in str(err)
    err = _problems(tmp_path, "s.json", "[1, 2]")
    assert "must be a table" in str(err)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.toml")


def test_error_is_a_local_error_and_value_error(tmp_path: Path) -> None:
    err = _problems(tmp_path, "s.toml", "[tools]\nmax_concurrency = 0\n")
    assert isinstance(err, LocalError) and isinstance(err, ValueError)
    assert err.source == str(tmp_path / "s.toml")
    assert err.problems == [("tools.max_concurrency", "Input should be greater than or equal to 1 (got 0)")]


def test_find_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_settings(tmp_path) is None
    monkeypatch.chdir(tmp_path)
    assert load_settings() == Settings()
    (tmp_path / "midstream.json").write_text('{"agent": {"max_iterations": 3}}')
    assert find_settings() == tmp_path / "midstream.json"
    assert load_settings().agent.max_iterations == 3
    (tmp_path / "midstream.toml").write_text("[agent]\nmax_iterations = 4\n")
    assert find_settings(tmp_path) == tmp_path / "midstream.toml"  # TOML first
    assert load_settings().agent.max_iterations == 4


def test_sniffs_unknown_suffix(tmp_path: Path) -> None:
    (tmp_path / "conf").write_text('{"tools": {"max_concurrency": 2}}')
    assert load_settings(tmp_path / "conf").tools.max_concurrency == 2
    (tmp_path / "conf2").write_text("[tools]\nmax_concurrency = 3\n")
    assert load_settings(tmp_path / "conf2").tools.max_concurrency == 3


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(ValueError):
        s.agent.max_iterations = 3  # type: ignore[misc]
    changed = s.model_copy(update={"agent": s.agent.model_copy(update={"max_iterations": 3})})
    assert changed.agent.max_iterations == 3 and s.agent.max_iterations == 10
