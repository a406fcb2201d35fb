"""Each provider's HTTP request for a :class:`~midstream.request.ChatRequest`, built from its profile.

Every provider is built the same way from its :class:`~midstream.wire.profiles.ProviderProfile`: the
body is its dialect's writer (:attr:`midstream.wire.request.RequestDialect.write`), JSON compact or
spaced as its SDK writes it; the URL is its endpoint's path on the base URL; the headers are its fixed
ones and its key in its key header. A provider with a ``sigv4_service`` (Bedrock) is signed instead
when it has no key.

Nothing here opens a connection. The outside state read is the environment (keys, AWS region) and, for
Bedrock without explicit credentials, botocore's default credential chain (files, and possibly the
instance metadata service, exactly as boto3 would).

:func:`build_request` returns an :class:`HTTPRequest` (method, URL, headers, body bytes and the wire
dialect that decodes the answer); the transport sends it. Bodies and the headers that matter are those
the official SDKs send for the same call (anthropic, openai, google-genai, boto3; Ollama's documented
shape), which the tests check against the SDKs themselves.

Base URLs follow each SDK's convention: OpenAI's includes the API version (``https://api.openai.com/v1``;
a base URL with no path at all gets ``/v1``, so a server root such as the simulator's works), the others
are the server root and the builder adds the versioned path. The Bedrock default has a ``{region}``
placeholder.

The base URL is ``base_url`` when given, else the provider's standard variable (:data:`BASE_URL_ENV`:
``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``, ``GOOGLE_GEMINI_BASE_URL``, ``OLLAMA_HOST``,
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``), else :data:`DEFAULT_BASE_URLS`.

Credentials: an explicit ``api_key`` wins, else the provider's environment variable (:data:`ENV_KEYS`).
A base URL on the loopback interface (``localhost``, ``127.x``, ``::1``: the simulator, a local Ollama
or vLLM) is used without a key when none is found; anywhere else a missing key is
:class:`MissingCredentials`.
Bedrock sends a Bedrock API key as a bearer token (``api_key``, or the environment's when no
``aws_credentials`` are given), otherwise signs with SigV4 using ``aws_credentials`` or botocore's default
credential chain. A key is never put in a URL, a message or a
repr: :meth:`HTTPRequest.redacted_headers` is what may be shown.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from midstream import wire
from midstream.client import _sigv4
from midstream.errors import LocalError
from midstream.request import ChatRequest
from midstream.wire.profiles import PROFILES, ProviderProfile, profile
from midstream.wire.request import RequestDialect, compact_json, spaced_json

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URLS",
    "ENV_KEYS",
    "PROVIDERS",
    "HTTPRequest",
    "MissingCredentials",
    "base_url_for",
    "build_request",
    "decoder_options",
    "is_loopback",
]

# The tables below are views of the provider registry (midstream.wire.profiles), kept by name for
# the code that reads them.
PROVIDERS: tuple[str, ...] = tuple(PROFILES)
"""The provider names :func:`build_request` accepts."""

ENV_KEYS: dict[str, str] = {p.name: p.env_key for p in PROFILES.values()}
"""Provider -> the environment variable its key is read from when ``api_key`` is not given (Gemini also
reads ``GOOGLE_API_KEY``, as google-genai does; Bedrock's is a Bedrock API key, else AWS credentials)."""

DEFAULT_BASE_URLS: dict[str, str] = {p.name: p.default_base_url for p in PROFILES.values()}
"""Provider -> the base URL used when neither ``base_url`` nor :data:`BASE_URL_ENV` gives one."""

BASE_URL_ENV: dict[str, str] = {p.name: p.base_url_env for p in PROFILES.values() if p.base_url_env}
"""Provider -> the environment variable naming its base URL when ``base_url`` is not given (none for
``openai-compatible``: it is always given a base_url, and must not borrow OpenAI's)."""


def decoder_options(provider: str) -> dict[str, Any]:
    """Options for :func:`midstream.wire.decoder` that follow from ``provider``'s profile."""
    return {} if profile(provider).always_finishes else {"finish_required": False}


# Header names whose values are credentials (substring match, lower case).
_SECRET_MARKS = ("auth", "key", "token", "secret", "password", "cookie", "credential", "signature")
_REDACTED = "***"


class MissingCredentials(LocalError):
    """A provider that needs a key got none. ``env_var`` names where it is looked for.

    Example:

        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"ANTHROPIC_API_KEY": "", "ANTHROPIC_BASE_URL": ""}):
        ...     try:
        ...         midstream.Client("anthropic").stream("Hi", model="claude-sonnet-4-5")
        ...     except midstream.MissingCredentials as exc:
        ...         print(exc.provider, exc.env_var)
        anthropic ANTHROPIC_API_KEY
    """

    def __init__(self, provider: str, env_var: str, hint: str = "") -> None:
        super().__init__(
            f"no credentials for {provider}: pass api_key= or set {env_var}{hint} "
            "(a local server, such as `midstream sim`, needs none: base_url='http://127.0.0.1:PORT')"
        )
        self.provider = provider
        self.env_var = env_var


@dataclass(frozen=True, slots=True, repr=False)
class HTTPRequest:
    """One HTTP request, ready to send: ``body`` is exactly the bytes to post, and ``dialect`` names
    the wire decoder (:func:`midstream.wire.decoder`) for the response body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    dialect: str
    secrets: tuple[str, ...] = field(default=(), compare=False)
    """Credentials the request was built with that its headers do not show whole (the AWS access key
    id, secret key and session token behind a SigV4 signature): what error texts and logs must hide."""

    def redacted_headers(self) -> dict[str, str]:
        """The headers with every credential value (authorization, API keys, tokens, ...) as ``***``."""
        return {
            name: _REDACTED if any(mark in name.lower() for mark in _SECRET_MARKS) else value
            for name, value in self.headers.items()
        }

    def __repr__(self) -> str:
        return (
            f"HTTPRequest(method={self.method!r}, url={self.url!r}, headers={self.redacted_headers()!r}, "
            f"body=<{len(self.body)} bytes>, dialect={self.dialect!r})"
        )


def build_request(
    provider: str,
    request: ChatRequest,
    *,
    api_key: str | None,
    base_url: str | None,
    stream: bool = True,
    extra_headers: Mapping[str, str] | None = None,
    region: str | None = None,
    aws_credentials: Any = None,
) -> HTTPRequest:
    """The HTTP request asking ``provider`` for ``request``.

    ``stream=False`` asks for one whole response instead of a stream. ``extra_headers`` are added last
    (overriding ours; on Bedrock they are signed too). ``region`` and ``aws_credentials`` matter to
    Bedrock only (``region`` defaults to ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, else ``us-east-1``).
    Raises :class:`MissingCredentials` when a required key is absent, :class:`LocalError` for an
    unknown provider (:class:`~midstream.wire.profiles.UnknownProvider`).
    """
    p = profile(provider)  # UnknownProvider for a name not in PROFILES
    dialect = wire.request_dialect(p.dialect)
    base = base_url_for(provider, base_url)
    extra = {name.lower(): value for name, value in (extra_headers or {}).items()}
    key = None if p.sigv4_service is not None else _key(p, api_key, local=is_loopback(base))
    payload = dialect.write(request, stream=stream, **p.body_options)
    body = spaced_json(payload) if p.spaced_json else compact_json(payload)
    if p.sigv4_service is not None:
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        url = _url(p, dialect, base.format(region=region).rstrip("/"), request.model, stream)
        return _signed(p, api_key, url, body, dict(p.request_headers) | extra, region, aws_credentials)
    headers = dict(p.request_headers) | ({} if key is None else {p.key_header: p.key_prefix + key})
    url = _url(p, dialect, base.rstrip("/"), request.model, stream)
    return HTTPRequest("POST", url, headers | extra, body, p.dialect)


def base_url_for(provider: str, base_url: str | None) -> str:
    """``base_url``, else the provider's variable (:data:`BASE_URL_ENV`), else its default URL.

    Example::

        base_url_for("anthropic", None)  # "https://api.anthropic.com" unless ANTHROPIC_BASE_URL is set
    """
    if base_url:
        return base_url
    p = profile(provider)
    value = (os.environ.get(p.base_url_env) or "").strip() if p.base_url_env else ""
    if not value:
        return p.default_base_url
    return _host_url(value, p.default_base_url) if p.base_url_env_host else value.rstrip("/")


def _host_url(value: str, default: str) -> str:
    """A base URL variable that may name a host (``OLLAMA_HOST``, as the ollama client reads it):
    ``host``, ``:port``, ``host:port`` or a URL; the port defaults to that of the ``default`` URL."""
    if "://" in value:
        return value.rstrip("/")
    host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
    return f"http://{host or '127.0.0.1'}:{port or urlsplit(default).port}"


def is_loopback(url: str) -> bool:
    """Whether ``url`` names this machine's loopback interface (``localhost``, ``127.x``, ``::1``).

    Example::

        is_loopback("http://127.0.0.1:8080")  # True
    """
    host = urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_PLACEHOLDER = re.compile(r"\{(\w+)(?::\w+)?\}")


def _url(p: ProviderProfile, dialect: RequestDialect, base: str, model: str, stream: bool) -> str:
    """The URL of ``p``'s endpoint for a streamed (or whole) answer, the model written into its path."""
    endpoint = next(e for e in p.endpoints if e.stream is None or e.stream == stream)
    path = _PLACEHOLDER.sub(lambda m: dialect.path_model(model) if m[1] == "model" else m[0], endpoint.path)
    if p.base_path:
        # The SDK's base URL carries this part of the path (OpenAI's /v1); a bare server root gets it.
        path = path.removeprefix(p.base_path)
        if urlsplit(base).path in ("", "/"):
            base = base.rstrip("/") + p.base_path
    query = f"?{urlencode(endpoint.query)}" if endpoint.query else ""
    return f"{base}{path}{query}"


def _signed(
    p: ProviderProfile,
    api_key: str | None,
    url: str,
    body: bytes,
    headers: dict[str, str],
    region: str,
    aws_credentials: Any,
) -> HTTPRequest:
    """A SigV4 provider's request: a key if there is one, else signed with AWS credentials."""
    assert p.sigv4_service is not None
    name = p.name.capitalize()
    # An explicit key, then explicit AWS credentials, then the environment's key, then botocore's chain.
    token = _clean(api_key)
    if token is None and aws_credentials is None:
        token = _clean(os.environ.get(p.env_key))
    if token is not None:
        return HTTPRequest("POST", url, headers | {p.key_header: p.key_prefix + token}, body, p.dialect)
    try:
        credentials = _sigv4.frozen_credentials(aws_credentials)
        if credentials is None and is_loopback(url):
            return HTTPRequest("POST", url, headers, body, p.dialect)  # a local server: unsigned
        if credentials is None:
            hint = (
                f" (a {p.name} API key), or AWS credentials (AWS_ACCESS_KEY_ID, a profile, aws_credentials=)"
            )
            raise MissingCredentials(p.name, p.env_key, hint)
        signed = _sigv4.sign(url, body, headers, region, credentials, p.sigv4_service)
    except ImportError as exc:
        raise LocalError(f"{name}'s SigV4 signing needs botocore: pip install botocore") from exc
    headers = {k.lower(): v for k, v in signed.items()}
    return HTTPRequest("POST", url, headers, body, p.dialect, _sigv4.secrets_of(credentials))


def _key(p: ProviderProfile, api_key: str | None, *, local: bool) -> str | None:
    """The key to use: ``api_key``, else the environment; ``None`` where a key is optional or the
    server is on this machine (``local``)."""
    key = _clean(api_key)
    for variable in (p.env_key, *p.env_key_alternates):
        key = key or _clean(os.environ.get(variable))
    if key is None and not p.key_optional and not local:
        raise MissingCredentials(p.name, p.env_key)
    return key


def _clean(key: str | None) -> str | None:
    if not key:
        return None
    if not key.isascii() or not key.isprintable() or key != key.strip():
        # Said without the value: a header error from the transport would echo it.
        raise LocalError("the API key contains characters an HTTP header cannot carry")
    return key
