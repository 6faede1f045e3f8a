"""Credentials: bearer and basic auth, OAuth 2.0, JWTs and API tokens."""

from __future__ import annotations

from .basic import (  # noqa: F401
    GOOGLE,
    PROVIDERS,
    AuthorizationRequest,
    BasicAuth,
    BearerAuth,
    ClientCredentialsGrant,
    InvalidToken,
    JWTManager,
    OAuth2Client,
    OAuth2Provider,
    OAuthTokenStore,
    ReauthorizationRequired,
    auth_from_config,
    pkce_challenge,
)

__all__ = [
    "GOOGLE",
    "PROVIDERS",
    "AuthorizationRequest",
    "BasicAuth",
    "BearerAuth",
    "ClientCredentialsGrant",
    "InvalidToken",
    "JWTManager",
    "OAuth2Client",
    "OAuth2Provider",
    "OAuthTokenStore",
    "ReauthorizationRequired",
    "auth_from_config",
    "pkce_challenge",
]
