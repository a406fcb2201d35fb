"""A damaged effects journal: a crash's torn last line makes its effect uncertain; any other damage is a
typed error naming the file and line until `repair_journal`; files are private; a resumed run reports
the calls the earlier run left running as uncertain, with the reason."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from midstream.agent.effects import (
    EffectLedger,
    EffectRecord,
    JournalError,
    JsonlJournal,
    MemoryJournal,
    SqliteJournal,
    check_journal,
    idempotency_key,
    open_journal,
    repair_journal,
)
from midstream.agent.tools import Tool


def line(record: EffectRecord) -> str:
    return json.dumps(record.to_json(), separators=(",", ":")) + "\n"


class Effects:
    def __init__(self) -> None:
        self.log: list[str] = []

    def write_tool(self, *, idempotent: bool = False) -> Tool:
        def write(path: str) -> str:
            self.log.append(f"write {path}")
            return f"wrote {path}"

        return Tool(write, side_effect=True, idempotent=idempotent)


KEY = idempotency_key("write", {"path": "a"})


def run(ledger: EffectLedger, tool: Tool, call_id: str, input: dict[str, Any]) -> Any:
    return asyncio.run(ledger.execute(tool, call_id, input))


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_torn_last_line_makes_its_effect_uncertain(tmp_path: Path, idempotent: bool) -> None:
    path = tmp_path / "effects.jsonl"
    started = line(EffectRecord("c1", "write", KEY, "started", input={"path": "a"}, time=1.0))
    path.write_text(started[: started.index('"status"') + 5])  # a crash during the write
    effects = Effects()
    journal = open_journal(path)
    execution = run(EffectLedger(journal), effects.write_tool(idempotent=idempotent), "c2", {"path": "a"})
    if idempotent:  # the tool's declared policy decides: it may run again
        assert execution.status == "done" and effects.log == ["write a"]
    else:
        assert execution.status == "uncertain" and effects.log == []
        assert "line 1 is damaged" in str(execution.error)
    journal.close()
    assert check_journal(path).ok  # a torn last line is a crash's trace, not damage
    if idempotent:  # the next append sealed the torn text in a marker line: the file reads again
        assert "damaged" in json.loads(path.read_text().splitlines()[0])


def test_damage_before_the_last_line_is_a_typed_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "effects.jsonl"
    good = line(EffectRecord("c1", "write", KEY, "done", result="ok", time=1.0))
    path.write_text(good + good[:30] + "\n" + line(EffectRecord("c3", "write", "k3", "done", time=2.0)))
    with pytest.raises(JournalError) as caught:
        open_journal(path)
    assert caught.value.line == 2 and str(path) in str(caught.value)
    assert "midstream journal repair" in str(caught.value)
    with pytest.raises(JournalError):  # a journal object made by hand refuses at the first lookup
        JsonlJournal(path).latest(KEY)


def test_invalid_utf8_is_a_journal_error_not_a_unicode_error(tmp_path: Path) -> None:
    path = tmp_path / "effects.jsonl"
    good = line(EffectRecord("c1", "write", KEY, "done", result="ok", time=1.0)).encode()
    path.write_bytes(good + good.replace(b"ok", b"o\xff") + good)
    with pytest.raises(JournalError) as caught:
        list(JsonlJournal(path).records())
    assert caught.value.line == 2 and "UTF-8" in caught.value.reason


def test_repair_keeps_every_effect_it_can_name(tmp_path: Path) -> None:
    path = tmp_path / "effects.jsonl"
    done = line(EffectRecord("c1", "write", "k1", "done", result="ok", time=1.0))
    started = line(EffectRecord("c2", "write", KEY, "started", input={"path": "a"}, time=2.0))
    path.write_text(done + started.replace("}", "", 1) + done)
    report = check_journal(path)
    assert not report.ok and [d.line for d in report.damage] == [2]
    assert any("line 2: damaged" in text for text in report.lines())
    repaired = repair_journal(path)
    assert repaired.ok and repaired.repaired == 1 and KEY in repaired.uncertain
    backup = Path(str(repaired.backup))
    assert backup.read_text() != path.read_text() and stat.S_IMODE(backup.stat().st_mode) == 0o600
    effects = Effects()
    execution = run(EffectLedger(open_journal(path)), effects.write_tool(), "c9", {"path": "a"})
    assert execution.status == "uncertain" and effects.log == []  # never re-run silently
    assert open_journal(path).already_done("k1") is not None


def test_a_damaged_sqlite_journal_is_a_journal_error(tmp_path: Path) -> None:
    path = tmp_path / "effects.db"
    path.write_bytes(b"this is not a database, it only has the name of one" * 100)
    with pytest.raises(JournalError) as caught:
        SqliteJournal(path)
    assert caught.value.path == str(path) and "journal check" in str(caught.value)
    assert not check_journal(path).ok


def test_sqlite_repair_salvages_the_rows_it_can_read(tmp_path: Path) -> None:
    path = tmp_path / "effects.db"
    with SqliteJournal(path) as journal:
        for i in range(400):
            journal.append(EffectRecord(f"c{i}", "write", f"k{i}", "done", result="x" * 200, time=i))
    data = bytearray(path.read_bytes())
    page = 4096
    data[page * 9 : page * 10] = b"\xee" * page  # one page of table rows overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(JournalError), SqliteJournal(path) as damaged:
        list(damaged.records())
    assert not check_journal(path).ok
    repaired = repair_journal(path)
    assert repaired.ok and 0 < repaired.records < 400 and repaired.records + repaired.lost == 400
    with SqliteJournal(path) as journal:
        assert journal.already_done("k0") is not None and journal.already_done("k399") is not None


@pytest.mark.parametrize("name", ["effects.jsonl", "effects.db"])
def test_journal_files_are_created_private(tmp_path: Path, name: str) -> None:
    path = tmp_path / "sub" / name
    journal = open_journal(path)
    journal.append(EffectRecord("c1", "write", KEY, "done", input={"secret": "s"}, time=1.0))
    journal.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.anyio
async def test_resumed_calls_left_running_are_uncertain_with_a_reason(tmp_path: Path) -> None:
    journal = MemoryJournal()
    journal.append(EffectRecord("c1", "write", KEY, "started", input={"path": "a"}, time=1.0))
    b_key = idempotency_key("write", {"path": "b"})
    journal.append(EffectRecord("c2", "write", b_key, "started", input={"path": "b"}, time=2.0))
    journal.append(EffectRecord("c2", "write", b_key, "done", result="wrote b", time=3.0))
    effects = Effects()
    tool = effects.write_tool()

    async def main() -> list[Any]:
        ledger = EffectLedger(journal, already_run=["c1", "c2", "c3"])
        return [
            await ledger.execute(tool, "c1", {"path": "a"}),
            await ledger.execute(tool, "c2", {"path": "b"}),
            await ledger.execute(tool, "c3", {"path": "c"}),
            await ledger.execute(tool, "c3", {"path": "c"}),
        ]

    first, second, third, again = await main()
    assert (first.status, second.status, third.status, again.status) == (
        "uncertain",
        "skipped",
        "uncertain",
        "duplicate",
    )
    assert second.result == "wrote b" and effects.log == []
    assert "'started'" in str(first.error) and "no record" in str(third.error)
    assert "already ran" in str(again.error)


def test_the_journal_commands(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from midstream.cli import app

    path = tmp_path / "effects.jsonl"
    done = line(EffectRecord("c1", "write", "k1", "done", result="ok", time=1.0))
    started = line(EffectRecord("c2", "write", KEY, "started", input={"path": "a"}, time=2.0))
    path.write_text(done + started[:40] + "\n" + done)
    runner = CliRunner()
    checked = runner.invoke(app, ["journal", "check", str(path)])
    assert checked.exit_code == 1 and "line 2: damaged" in checked.output
    assert "journal repair" in checked.output
    repaired = runner.invoke(app, ["journal", "repair", str(path)])
    assert repaired.exit_code == 0 and "ok: a run may use it" in repaired.output
    assert f"{path}.bak" in repaired.output
    assert runner.invoke(app, ["journal", "check", str(path)]).exit_code == 0
    assert runner.invoke(app, ["journal", "check", str(tmp_path / "none.jsonl")]).exit_code == 2
