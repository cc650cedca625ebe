"""Identity and access: bearer JWTs, roles, nation and hub scopes."""

from shared.auth.policy import AccessPolicy, Role, Rule, Scope
from shared.auth.principal import Principal
from shared.auth.tokens import DEV_SECRET, TokenError, TokenVerifier, mint_token

__all__ = [
    "DEV_SECRET",
    "AccessPolicy",
    "Principal",
    "Role",
    "Rule",
    "Scope",
    "TokenError",
    "TokenVerifier",
    "mint_token",
]
