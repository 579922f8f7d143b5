"""Hook authentication: ``Authorization: Token <t>`` (Landbot's form) or ``Bearer <t>``.

Every configured token is compared, always, on SHA-256 digests of equal length with
`hmac.compare_digest`, so the time taken depends neither on where a wrong token first differs
nor on its length, nor on which of a hook's tokens matched.
"""

import hashlib
import hmac

from messagehooks.errors import Unauthorized
from messagehooks.settings import Hook

_SCHEMES = frozenset({"token", "bearer"})


def presented_token(authorization: str | None) -> str | None:
    """The token of an Authorization header, or None when absent or of another scheme."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in _SCHEMES or not token:
        return None
    return token


def authenticate(hook: Hook, authorization: str | None) -> None:
    """Accept the request for `hook` or raise `Unauthorized` (never echoing the token)."""
    if hook.open:
        return
    token = presented_token(authorization)
    given = hashlib.sha256((token or "").encode("utf-8", "surrogateescape")).digest()
    matched = False
    for secret in hook.tokens:
        expected = hashlib.sha256(str(secret).encode()).digest()
        matched |= hmac.compare_digest(given, expected)
    if token is None or not matched:
        raise Unauthorized(f"hook {hook.name!r} needs `Authorization: Token <token>`")
