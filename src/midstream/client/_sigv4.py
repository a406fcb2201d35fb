"""AWS SigV4 for providers that sign their requests (Bedrock without an API key), computed by botocore.

botocore is imported when a request is signed, not before; its log records never show the credentials
midstream signed with (:func:`scrub_botocore_logs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from midstream.errors import LocalError


def frozen_credentials(credentials: Any) -> Any:
    """botocore ``ReadOnlyCredentials`` from what the caller gave: botocore credentials, a mapping with
    ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``, or a tuple
    ``(access_key, secret_key[, token])``; ``None`` resolves botocore's default chain (environment,
    profile, ...), and may give ``None``."""
    from botocore.credentials import ReadOnlyCredentials  # type: ignore[import-untyped]

    if credentials is None:
        from botocore.session import Session  # type: ignore[import-untyped]

        resolved = Session().get_credentials()
        return None if resolved is None else resolved.get_frozen_credentials()
    if hasattr(credentials, "get_frozen_credentials"):
        return credentials.get_frozen_credentials()
    if isinstance(credentials, ReadOnlyCredentials):
        return credentials
    if isinstance(credentials, Mapping):
        return ReadOnlyCredentials(
            credentials["aws_access_key_id"],
            credentials["aws_secret_access_key"],
            credentials.get("aws_session_token"),
        )
    if isinstance(credentials, tuple) and len(credentials) in (2, 3):
        return ReadOnlyCredentials(*credentials, *([None] * (3 - len(credentials))))
    # Only the type is named: the value may hold a secret.
    raise LocalError(f"aws_credentials: cannot use a {type(credentials).__name__}")


def secrets_of(credentials: Any) -> tuple[str, ...]:
    """The access key id, secret key and session token of frozen ``credentials`` (those present)."""
    values = (getattr(credentials, name, None) for name in ("access_key", "secret_key", "token"))
    return tuple(value for value in values if isinstance(value, str) and value)


class _Scrub(logging.Filter):
    """Replaces the credentials midstream signed with by ``***`` in botocore's log records: at DEBUG
    botocore logs the canonical request, session token included."""

    _KEEP = 64  # the newest credentials remembered (they rotate; the set must not grow forever)

    def __init__(self) -> None:
        super().__init__()
        self.secrets: dict[str, None] = {}

    def remember(self, secrets: tuple[str, ...]) -> None:
        for secret in secrets:
            if len(secret) >= 4:
                self.secrets.pop(secret, None)
                self.secrets[secret] = None
        while len(self.secrets) > self._KEEP:
            del self.secrets[next(iter(self.secrets))]

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = sorted(self.secrets, key=len, reverse=True)
        if secrets:
            text = clean = record.getMessage()
            for secret in secrets:
                clean = clean.replace(secret, "***")
            if clean != text:
                record.msg, record.args = clean, None
        return True


_SCRUB = _Scrub()
# The botocore modules that run while credentials resolve and a request is signed, and may log.
_BOTOCORE_LOGGERS = (
    "botocore",
    "botocore.auth",
    "botocore.awsrequest",
    "botocore.credentials",
    "botocore.hooks",
    "botocore.loaders",
    "botocore.session",
    "botocore.utils",
)


def scrub_botocore_logs(secrets: tuple[str, ...]) -> None:
    """Keep ``secrets`` out of every record botocore's loggers emit from now on."""
    _SCRUB.remember(secrets)
    for name in _BOTOCORE_LOGGERS:
        logger = logging.getLogger(name)
        if _SCRUB not in logger.filters:
            logger.addFilter(_SCRUB)


def sign(
    url: str, body: bytes, headers: dict[str, str], region: str, credentials: Any, service: str
) -> dict[str, str]:
    """SigV4 headers (``X-Amz-Date``, ``Authorization``, ``X-Amz-Security-Token`` with a session token)
    for a POST of ``body`` to ``url`` for AWS ``service``, computed by botocore; ``headers`` are signed
    too. botocore's log records never show the credentials (:func:`scrub_botocore_logs`)."""
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]

    scrub_botocore_logs(secrets_of(credentials))
    aws = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    SigV4Auth(credentials, service, region).add_auth(aws)
    return {name: str(value) for name, value in aws.headers.items()}
