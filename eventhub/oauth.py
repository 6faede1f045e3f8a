"""eventhub.oauth, kept where the docs name it: see :mod:`eventhub.auth.oauth`."""

from __future__ import annotations

from .auth.oauth import (  # noqa: F401
    GOOGLE,
    PROVIDERS,
    AuthorizationRequest,
    OAuth2Client,
    OAuth2Provider,
    OAuthTokenStore,
    pkce_challenge,
)

__all__ = [
    "OAuth2Provider",
    "GOOGLE",
    "PROVIDERS",
    "AuthorizationRequest",
    "pkce_challenge",
    "OAuth2Client",
    "OAuthTokenStore",
]
