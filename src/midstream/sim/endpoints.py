"""The side endpoints clients call besides generation, and the 404 every unknown route gets.

* Anthropic: ``POST /v1/messages/count_tokens``, ``GET /v1/models`` and ``/v1/models/{id}`` (with an
  ``anthropic-version`` header);
* OpenAI: ``GET /v1/models`` and ``/v1/models/{id}``, ``GET /v1/responses/{id}`` (a stored response);
* Gemini: ``GET /v1beta/models`` and ``/v1beta/models/{model}``, ``POST .../models/{model}:countTokens``;
* Bedrock: ``POST /model/{id}/count-tokens``;
* Ollama: ``GET /api/tags``, ``POST /api/show``, ``GET /api/version``, ``GET /api/ps``.

The simulator serves any model name, so every model asked about exists; the lists hold each
provider's default model. Token counts are the simulator's own (:func:`~midstream.sim.script.count_tokens`),
the same the answers report as input usage. An unknown route is a 404 in the shape of the provider the
request looks like it is for (by its path and headers), with that provider's message.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from midstream import wire
from midstream.sim.nonstream import error_body
from midstream.sim.requests import parse_request
from midstream.wire.profiles import profile

__all__ = ["GEMINI_MODEL_PATHS", "OLLAMA_VERSION", "guess_provider", "not_found"]

OLLAMA_VERSION = "0.12.6"
"""The Ollama version ``/api/version`` reports."""
_CREATED = 1_700_000_000  # the creation time the simulated models report
_MODIFIED = "2026-01-01T00:00:00.000000000Z"


def guess_provider(path: str, headers: Any) -> str:
    """The provider a request is meant for, from its path and headers (for errors on unknown routes)."""
    if path.startswith("/api/"):
        return "ollama"
    if path.startswith("/model/") or str(headers.get("authorization", "")).startswith("AWS4-"):
        return "bedrock"
    if "x-goog-api-key" in headers or path.startswith("/v1beta/") or "/publishers/google/" in path:
        return "gemini"
    if "anthropic-version" in headers or "x-api-key" in headers:
        return "anthropic"
    return "openai-chat"


def not_found(request: Request, exc: Exception | None = None) -> Response:
    """The 404 (or 405, for a known path and another method) of an unknown route, in the provider's shape."""
    status = getattr(exc, "status_code", 404)
    provider = guess_provider(request.url.path, request.headers)
    message = wire.request_dialect(provider).not_found(request.method, request.url.path)
    payload, headers = error_body(provider, status, "not_found", message)
    return Response(payload, status, headers=headers, media_type="application/json")


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _bad(provider: str, message: str) -> Response:
    payload, headers = error_body(provider, 400, "invalid_request", message)
    return Response(payload, 400, headers=headers, media_type="application/json")


# -- Anthropic and OpenAI ------------------------------------------------------------------------------


async def anthropic_count_tokens(request: Request) -> Response:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": n}``."""
    body = await _json(request)
    for name in ("model", "messages"):
        if name not in body:
            return _bad("anthropic", f"{name}: Field required")
    return JSONResponse({"input_tokens": parse_request("anthropic", body, {}).input_tokens})


def _anthropic_model(model_id: str) -> dict[str, Any]:
    return {"type": "model", "id": model_id, "display_name": model_id, "created_at": "2026-01-01T00:00:00Z"}


def _openai_model(model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "system"}


async def models(request: Request) -> Response:
    """``GET /v1/models``: Anthropic's page of models, or OpenAI's list."""
    if guess_provider(request.url.path, request.headers) == "anthropic":
        model = profile("anthropic").default_model or "claude"
        page = {"data": [_anthropic_model(model)], "has_more": False, "first_id": model, "last_id": model}
        return JSONResponse(page)
    return JSONResponse(
        {"object": "list", "data": [_openai_model(profile("openai-chat").default_model or "")]}
    )


async def model(request: Request) -> Response:
    """``GET /v1/models/{id}``: one model, Anthropic's or OpenAI's (or Gemini v1's) shape."""
    model_id = request.path_params["target"]
    provider = guess_provider(request.url.path, request.headers)
    if provider == "gemini":
        return JSONResponse(_gemini_model(model_id))
    return JSONResponse(_anthropic_model(model_id) if provider == "anthropic" else _openai_model(model_id))


# -- Gemini ----------------------------------------------------------------------------------------------


def _gemini_model(model_id: str) -> dict[str, Any]:
    name = model_id.removeprefix("models/")
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": "A model of the midstream simulator.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "streamGenerateContent"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": True,
    }


async def gemini_models(request: Request) -> Response:
    """``GET /v1beta/models``."""
    return JSONResponse({"models": [_gemini_model(profile("gemini").default_model or "gemini")]})


async def gemini_model(request: Request) -> Response:
    """``GET /v1beta/models/{model}``."""
    return JSONResponse(_gemini_model(request.path_params["target"]))


GEMINI_MODEL_PATHS = (
    "/v1beta/models/{target}",
    "/v1/models/{target}",
    "/{version}/projects/{project}/locations/{location}/publishers/google/models/{target}",
    "/{version}/publishers/google/models/{target}",
)
"""The paths of a Gemini model: its methods other than generation are answered by :func:`gemini_method`."""


async def gemini_method(request: Request) -> Response:
    """``POST .../models/{model}:{method}`` for a method other than generation: ``countTokens``, or a 404."""
    method = request.path_params["target"].partition(":")[2]
    if method == "countTokens":
        return await gemini_count_tokens(request)
    payload, _ = error_body("gemini", 404, "not_found", f"unknown method {method!r}")
    return Response(payload, 404, media_type="application/json")


async def gemini_count_tokens(request: Request) -> Response:
    """``POST .../models/{model}:countTokens``: ``contents``, or a whole ``generateContentRequest``."""
    body = await _json(request)
    inner = body.get("generateContentRequest") or body.get("generate_content_request")
    request_body = inner if isinstance(inner, dict) else body
    if not request_body.get("contents"):
        return _bad("gemini", "* CountTokensRequest.contents: contents is not specified\n")
    count = parse_request("gemini", request_body, {}).input_tokens
    return JSONResponse(
        {"totalTokens": count, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": count}]}
    )


# -- Bedrock ---------------------------------------------------------------------------------------------


async def bedrock_count_tokens(request: Request) -> Response:
    """``POST /model/{id}/count-tokens``: ``{"input": {"converse": {...}}}`` or ``{"invokeModel": ...}``."""
    given = (await _json(request)).get("input")
    if not isinstance(given, dict) or not ("converse" in given or "invokeModel" in given):
        return _bad(
            "bedrock",
            "1 validation error detected: Value null at 'input' "
            "failed to satisfy constraint: Member must not be null",
        )
    converse = given.get("converse")
    if isinstance(converse, dict):
        count = parse_request("bedrock", converse, {}).input_tokens
    else:
        invoke = given.get("invokeModel") or {}
        body = invoke.get("body") if isinstance(invoke, dict) else ""
        try:
            decoded = json.loads(body) if isinstance(body, str) else {}
        except ValueError:
            decoded = {}
        count = parse_request("anthropic", decoded if isinstance(decoded, dict) else {}, {}).input_tokens
    return JSONResponse({"inputTokens": count})


# -- Ollama ----------------------------------------------------------------------------------------------

_DETAILS = {
    "parent_model": "",
    "format": "gguf",
    "family": "llama",
    "families": ["llama"],
    "parameter_size": "3.2B",
    "quantization_level": "Q4_K_M",
}


def _ollama_name(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _ollama_model(name: str) -> dict[str, Any]:
    name = _ollama_name(name)
    digest = "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72"
    return {
        "name": name,
        "model": name,
        "modified_at": _MODIFIED,
        "size": 2_019_393_189,
        "digest": digest,
        "details": _DETAILS,
    }


async def ollama_tags(request: Request) -> Response:
    """``GET /api/tags``: the models pulled (the default one)."""
    return JSONResponse({"models": [_ollama_model(profile("ollama").default_model or "llama3.2")]})


async def ollama_show(request: Request) -> Response:
    """``POST /api/show``: a model's details and capabilities."""
    body = await _json(request)
    name = body.get("model") or body.get("name")
    if not isinstance(name, str) or not name:
        return _bad("ollama", "model is required")
    return JSONResponse(
        {
            "modelfile": f"FROM {_ollama_name(name)}\n",
            "parameters": 'stop "<|eot_id|>"',
            "template": "{{ .Prompt }}",
            "details": _DETAILS,
            "model_info": {"general.architecture": "llama", "llama.context_length": 131072},
            "capabilities": ["completion", "tools", "thinking"],
            "modified_at": _MODIFIED,
        }
    )


async def ollama_version(request: Request) -> Response:
    """``GET /api/version``."""
    return JSONResponse({"version": OLLAMA_VERSION})


async def ollama_ps(request: Request) -> Response:
    """``GET /api/ps``: the models loaded (none stay loaded in the simulator)."""
    return JSONResponse({"models": []})
