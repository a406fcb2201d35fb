"""The providers' standard base-URL variables, and the rule that a loopback server needs no key.

``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``, ``OLLAMA_HOST`` (and AWS's
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``) are read as the official SDKs read them; an explicit ``base_url``
wins. A base URL on the loopback interface (a local simulator, Ollama, vLLM) is used without a key when
none is found, so the examples run against ``midstream sim`` with nothing set but the URL.
"""

from __future__ import annotations

import pytest

import midstream
from midstream.client.providers import (
    BASE_URL_ENV,
    DEFAULT_BASE_URLS,
    ENV_KEYS,
    PROVIDERS,
    MissingCredentials,
    base_url_for,
    build_request,
)
from midstream.client.request import ChatRequest
from midstream.sim import running

AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in {*ENV_KEYS.values(), *BASE_URL_ENV.values(), "GOOGLE_API_KEY", *AWS_ENV}:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")


REQUEST = ChatRequest.create("m", "hi")
URLS = {
    "anthropic": "https://proxy.example/v1/messages",
    "openai-chat": "https://proxy.example/v1/chat/completions",
    "openai-responses": "https://proxy.example/v1/responses",
    "gemini": "https://proxy.example/v1/models/m:streamGenerateContent?alt=sse",
    "bedrock": "https://proxy.example/model/m/converse-stream",
}


def test_every_provider_has_exactly_one_base_url_variable() -> None:
    assert set(BASE_URL_ENV) == set(PROVIDERS) - {"openai-compatible"}
    assert BASE_URL_ENV["anthropic"] == "ANTHROPIC_BASE_URL"
    assert BASE_URL_ENV["openai-chat"] == BASE_URL_ENV["openai-responses"] == "OPENAI_BASE_URL"
    assert BASE_URL_ENV["gemini"] == "GOOGLE_GEMINI_BASE_URL"
    assert BASE_URL_ENV["ollama"] == "OLLAMA_HOST"


@pytest.mark.parametrize("provider", sorted(URLS))
def test_the_variable_sets_the_base_url(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base = "https://proxy.example/v1" if provider.startswith("openai") else "https://proxy.example"
    monkeypatch.setenv(BASE_URL_ENV[provider], base)
    built = build_request(provider, REQUEST, api_key="k", base_url=None)
    assert built.url == URLS[provider]


@pytest.mark.parametrize("provider", sorted(URLS))
def test_an_explicit_base_url_wins_over_the_variable(provider: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BASE_URL_ENV[provider], "https://ignored.example")
    built = build_request(provider, REQUEST, api_key="k", base_url="https://chosen.example/v1")
    assert built.url.startswith("https://chosen.example/")


def test_without_the_variable_the_providers_own_url_is_used() -> None:
    assert base_url_for("anthropic", None) == DEFAULT_BASE_URLS["anthropic"]
    assert base_url_for("openai-compatible", None) == DEFAULT_BASE_URLS["openai-compatible"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1", "http://127.0.0.1:11434"),
        (":8080", "http://127.0.0.1:8080"),
        ("ollama.internal", "http://ollama.internal:11434"),
        ("https://ollama.example", "https://ollama.example"),  # a scheme given: its default port
        ("http://[::1]:9000", "http://[::1]:9000"),
        ("http://gpu:11434/", "http://gpu:11434"),
    ],
)
def test_ollama_host_is_read_as_ollama_reads_it(
    value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", value)
    assert base_url_for("ollama", None) == expected


@pytest.mark.parametrize("provider", ["anthropic", "openai-chat", "openai-responses", "gemini", "bedrock"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
def test_a_loopback_base_url_needs_no_key(provider: str, host: str) -> None:
    built = build_request(provider, REQUEST, api_key=None, base_url=f"http://{host}:8123")
    assert not any(
        value for name, value in built.headers.items() if name in ("authorization", "x-goog-api-key")
    )


@pytest.mark.parametrize("provider", ["anthropic", "openai-chat", "gemini"])
def test_a_remote_base_url_still_needs_a_key(provider: str) -> None:
    with pytest.raises(MissingCredentials) as caught:
        build_request(provider, REQUEST, api_key=None, base_url="https://proxy.example")
    assert "local" in str(caught.value)  # says how to run without one


def test_a_key_found_is_still_sent_to_a_loopback_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-local")
    built = build_request("anthropic", REQUEST, api_key=None, base_url="http://127.0.0.1:1")
    assert any("sk-local" in value for value in built.headers.values())


def test_client_streams_from_the_simulator_with_only_the_variable_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with running(speed=0) as url:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        client = midstream.Client("anthropic")
        with client.stream("hi", model="claude-sonnet-4-5") as stream:
            message = stream.final()
        assert message.terminal == "completed" and message.text
        assert [r.provider for r in url.simulator.records] == ["anthropic"]
