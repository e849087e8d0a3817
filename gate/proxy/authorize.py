"""The authorize step: does a verified token meet a route's requirements?"""

from __future__ import annotations

from gate.errors import BearerError
from gate.proxy.routes import Route
from gate.tokens.verifier import VerifiedToken


def token_audiences(token: VerifiedToken) -> frozenset[str]:
    audience = token.claims.get("aud")
    if isinstance(audience, str):
        return frozenset((audience,))
    if isinstance(audience, list):
        return frozenset(value for value in audience if isinstance(value, str))
    return frozenset()


def authorize(route: Route, token: VerifiedToken) -> None:
    """Raise ``BearerError`` unless ``token`` is accepted by ``route``.

    The token must name at least one of the route's audiences.
    """
    if route.audience.isdisjoint(token_audiences(token)):
        raise BearerError(
            "invalid_token", "The token is not meant for this API (audience mismatch).", reason_id="audience_mismatch"
        )
