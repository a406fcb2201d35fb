"""The provider registry: every name the client, the simulator and the command line accept comes from
it, and each profile agrees with the dialect it names."""

from __future__ import annotations

import dataclasses

import pytest

from midstream import wire
from midstream.client import providers
from midstream.client.request import ChatRequest
from midstream.errors import LocalError
from midstream.wire.profiles import PROFILES, ProviderProfile, UnknownProvider, profile


def test_every_profile_names_a_dialect_midstream_decodes() -> None:
    for p in PROFILES.values():
        assert p.dialect in wire.DIALECTS, p.name
        wire.decoder(p.dialect)


def test_every_dialect_has_a_provider_of_its_own_name() -> None:
    assert {p.name for p in PROFILES.values() if p.name == p.dialect} == set(wire.DIALECTS)


def test_the_client_tables_are_views_of_the_registry() -> None:
    assert tuple(PROFILES) == providers.PROVIDERS
    assert {name: p.env_key for name, p in PROFILES.items()} == providers.ENV_KEYS
    assert {name: p.default_base_url for name, p in PROFILES.items()} == providers.DEFAULT_BASE_URLS
    assert "openai-compatible" not in providers.BASE_URL_ENV


@pytest.mark.parametrize("name", list(PROFILES))
def test_a_request_is_decoded_by_the_profiles_dialect(name: str) -> None:
    request = ChatRequest.create("m", "hi")
    built = providers.build_request(name, request, api_key="key-0123", base_url="http://127.0.0.1:1")
    assert built.dialect == profile(name).dialect


def test_an_unknown_provider_is_named_with_the_known_ones() -> None:
    with pytest.raises(UnknownProvider, match=r"unknown provider 'nope'; known: anthropic, openai-chat"):
        profile("nope")
    request = ChatRequest.create("m", "hi")
    with pytest.raises(LocalError, match="unknown provider 'nope'"):
        providers.build_request("nope", request, api_key="k", base_url=None)
    assert issubclass(UnknownProvider, ValueError)


def test_profiles_are_frozen_and_keyword_only() -> None:
    p = profile("anthropic")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ProviderProfile("x", "anthropic")  # type: ignore[misc]


def test_ids_and_headers_have_the_providers_shape() -> None:
    assert profile("anthropic").tool_id_prefix == "toolu_01"
    assert profile("bedrock").response_id_prefix is None
    assert profile("openai-responses").response_headers == {"openai-processing-ms": "1"}
    assert profile("openai-responses").sends_reasoning and not profile("openai-chat").sends_reasoning
