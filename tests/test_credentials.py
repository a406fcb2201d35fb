"""AWS credentials in every form the client takes (botocore credentials, a tuple, a dict, botocore's
default chain from the environment) never show: not in reprs, errors, events, metrics, the simulator's
request log, nor in any log record at DEBUG, botocore's own included."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest
from botocore.credentials import Credentials

from midstream.client.stream import Client
from midstream.sim import ScenarioBook, SimURL

ID, SECRET, TOKEN = (
    "AKIAEXAMPLEKEYID7Q2Z",
    "aws/Secret+Key/EXAMPLE0123456789abc",
    "SessionTokenEXAMPLE0123456789xyz",
)
STORY = {"name": "story", "match": {"last_user": "(?i)story"}, "turns": [{"blocks": [{"text": "A story."}]}]}


@pytest.fixture(scope="module")
def book() -> ScenarioBook:
    return ScenarioBook.model_validate({"scenarios": [STORY]})


FORMS: dict[str, Callable[[pytest.MonkeyPatch], Any]] = {
    "botocore": lambda mp: Credentials(ID, SECRET, TOKEN),
    "tuple": lambda mp: (ID, SECRET, TOKEN),
    "dict": lambda mp: {"aws_access_key_id": ID, "aws_secret_access_key": SECRET, "aws_session_token": TOKEN},
    "chain": lambda mp: None,  # botocore's default chain, from the environment set below
}


def everything(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    parts = [str(exc), repr(exc), repr(exc.args), "".join(traceback.format_exception(exc))]
    parts += [repr(value) for value in vars(exc).values()]
    for linked in (exc.__cause__, exc.__context__, getattr(exc, "cause", None)):
        if isinstance(linked, BaseException) and linked is not exc:
            parts.append(everything(linked))
    return "\n".join(parts)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_aws_credentials_never_show(
    sim: SimURL,
    form: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("AWS_BEARER_TOKEN_BEDROCK", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    caplog.set_level(logging.DEBUG)  # every logger, botocore's too
    outputs: list[str] = []
    client = Client(
        "bedrock", base_url=sim, model="m", region="us-east-1", aws_credentials=FORMS[form](monkeypatch)
    )
    with client:
        outputs += [repr(client), str(client), repr(vars(client))]
        for fault in (None, "http_status=403;times=9", "error_after_events=3"):
            stream = client.stream("tell a story", headers={"x-midstream-fault": fault} if fault else None)
            events: list[Any] = []
            error: BaseException | None = None
            try:
                with stream:
                    events.extend(stream)
            except Exception as exc:
                error = exc
            outputs += [repr(stream), repr(stream.request), repr(stream.message), *map(repr, events)]
            outputs += [json.dumps(stream.metrics.as_dict()), everything(error)]
            assert stream.request.headers["authorization"].startswith("AWS4-HMAC-SHA256")  # really signed
    outputs += [httpx2.get(f"{sim}/_sim/requests").text, caplog.text, *capsys.readouterr()]
    assert any(r.name.startswith("botocore") for r in caplog.records)  # botocore's DEBUG lines were seen
    text = "\n".join(outputs)
    for secret in (ID, SECRET, TOKEN):
        assert secret not in text, f"{secret[:4]}... leaked: {text[max(0, text.find(secret) - 120) :][:240]}"
