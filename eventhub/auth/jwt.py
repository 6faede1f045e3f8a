"""JSON Web Tokens: issue, verify and refresh signed tokens with pyjwt.

:class:`JWTManager` needs the ``server`` extra (``pip install 'eventhub[server]'``),
which also brings the cryptography package for the public-key algorithms::

    jwts = JWTManager(secret, issuer="eventhub", audience="api")
    token = jwts.generate_token({"sub": "user-7"})
    claims = jwts.verify_token(token)           # raises InvalidToken with the reason

The module is not called ``jwt.py``: that would shadow pyjwt's ``jwt`` package for
scripts run from this folder.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..errors import ConfigError, MissingDependency, UserError
from ..redact import register_secret

_HMAC_MIN = {"HS256": 32, "HS384": 48, "HS512": 64}
_ASYMMETRIC = {
    *(f"{family}{bits}" for family in ("RS", "PS", "ES") for bits in (256, 384, 512)),
    "ES256K",
    "EdDSA",
}


class InvalidToken(UserError):
    """A JSON Web Token that failed verification; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid token: {reason}")


def _pyjwt() -> Any:
    try:
        import jwt
    except ImportError:
        raise MissingDependency("pyjwt", "server") from None
    return jwt


class JWTManager:
    """Issues and verifies signed JSON Web Tokens (pyjwt, ``server`` extra).

    Args:
        secret_key: The HMAC secret, or the private key for RS/PS/ES/EdDSA.
        algorithm: The algorithm tokens are signed with.
        algorithms: The algorithms accepted on verification (default: ``algorithm``).
        expiry: Lifetime of issued tokens.
        issuer: ``iss`` set on issue and required on verification.
        audience: ``aud`` set on issue and required on verification.
        leeway: Seconds of clock skew tolerated on ``exp``/``nbf``/``iat``.
        clock: Wall clock in seconds.
        verify_key: The public key for asymmetric algorithms (default: secret_key).

    Raises:
        ConfigError: for ``none``, unknown or mixed algorithm families, and HMAC
            secrets shorter than the hash (32 bytes for HS256).
        MissingDependency: when pyjwt is not installed, or cryptography is not
            and a public-key algorithm is asked for.
    """

    def __init__(
        self,
        secret_key: str | bytes,
        *,
        algorithm: str = "HS256",
        algorithms: Sequence[str] | None = None,
        expiry: timedelta = timedelta(hours=24),
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 0,
        clock: Callable[[], float] = time.time,
        verify_key: str | bytes | None = None,
    ) -> None:
        self._jwt = _pyjwt()
        allowed = list(algorithms) if algorithms is not None else [algorithm]
        for name in {algorithm, *allowed}:
            if name.lower() == "none":
                raise ConfigError("JWT algorithm 'none' is never accepted")
            if name not in _HMAC_MIN and name not in _ASYMMETRIC:
                raise ConfigError(f"unknown JWT algorithm {name!r}")
        if algorithm not in allowed:
            raise ConfigError(f"JWT algorithm {algorithm} is not in algorithms")
        if len({name in _HMAC_MIN for name in allowed}) > 1:
            raise ConfigError("do not mix HMAC and public-key JWT algorithms")
        if algorithm in _HMAC_MIN:
            size = len(
                secret_key.encode() if isinstance(secret_key, str) else secret_key
            )
            needed = max(_HMAC_MIN[a] for a in allowed)
            if size < needed:
                raise ConfigError(
                    f"a JWT {algorithm} secret needs at least {needed} bytes"
                    f" (got {size}); generate one with: openssl rand -hex 32"
                )
        elif not self._jwt.algorithms.has_crypto:
            raise MissingDependency("cryptography", "server")
        if algorithm in _HMAC_MIN or verify_key is None or verify_key != secret_key:
            # Redacted wherever it would be written; a public key given as both
            # keys (verification only) is no secret.
            register_secret(secret_key)
        self._secret = secret_key
        self._verify_key = verify_key if verify_key is not None else secret_key
        self.algorithm = algorithm
        self.algorithms = allowed
        self.expiry = expiry
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.clock = clock

    def generate_token(
        self, claims: Mapping[str, Any], *, expiry: timedelta | None = None
    ) -> str:
        """A signed token carrying ``claims``.

        ``iat``, ``exp`` and ``jti`` (and ``iss``/``aud`` when configured) are set by
        the manager; a user record with ``id`` and no ``sub`` gets ``sub = str(id)``.
        """
        now = int(self.clock())
        payload = dict(claims)
        if "sub" not in payload and "id" in payload:
            payload["sub"] = str(payload["id"])
        payload.update(
            iat=now,
            exp=now + int((expiry or self.expiry).total_seconds()),
            jti=secrets.token_urlsafe(16),
        )
        if self.issuer is not None:
            payload["iss"] = self.issuer
        if self.audience is not None:
            payload["aud"] = self.audience
        token: str = self._jwt.encode(payload, self._secret, algorithm=self.algorithm)
        return token

    def verify_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid token.

        Raises:
            InvalidToken: with the reason (expired, bad signature, algorithm not
                allowed, missing claim, wrong issuer or audience, malformed).
        """
        jwt = self._jwt
        try:
            alg = jwt.get_unverified_header(token).get("alg")
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed") from None
        if alg not in self.algorithms:
            raise InvalidToken(f"algorithm {str(alg)[:20]!r} is not allowed")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={
                    "require": ["exp", "iat"],
                    # Times are checked below against our clock, not pyjwt's.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_aud": self.audience is not None,
                    "verify_iss": self.issuer is not None,
                },
            )
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim}") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("algorithm not allowed") from None
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(f"malformed ({type(exc).__name__})") from None
        self._check_times(claims)
        return claims

    def refresh_token(self, token: str) -> str:
        """A new token with the claims of a still-valid one and a new lifetime."""
        claims = self.verify_token(token)
        for key in ("iat", "exp", "nbf", "jti", "iss", "aud"):
            claims.pop(key, None)
        return self.generate_token(claims)

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        for key in ("exp", "iat", "nbf"):
            if key in claims and (
                isinstance(claims[key], bool)
                or not isinstance(claims[key], int | float)
            ):
                raise InvalidToken(f"claim {key} is not a number")
        if claims["exp"] <= now - self.leeway:
            raise InvalidToken("expired")
        if claims["iat"] > now + self.leeway:
            raise InvalidToken("issued in the future")
        if "nbf" in claims and claims["nbf"] > now + self.leeway:
            raise InvalidToken("not yet valid")

    def __repr__(self) -> str:
        return f"<JWTManager {self.algorithm} [REDACTED]>"
