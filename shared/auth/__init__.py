"""Identity and access: bearer JWTs, roles, nation and hub scopes."""

from shared.auth.policy import (
    AccessPolicy,
    Role,
    Rule,
    Scope,
    require_own_hub,
    require_own_nation,
    rule,
)
from shared.auth.principal import Principal
from shared.auth.tokens import (
    DEV_SECRET,
    MAX_HUB_CHARS,
    MAX_SUB_CHARS,
    KeyConfigError,
    TokenError,
    TokenVerifier,
    mint_token,
)

__all__ = [
    "DEV_SECRET",
    "MAX_HUB_CHARS",
    "MAX_SUB_CHARS",
    "AccessPolicy",
    "KeyConfigError",
    "Principal",
    "Role",
    "Rule",
    "Scope",
    "TokenError",
    "TokenVerifier",
    "mint_token",
    "require_own_hub",
    "require_own_nation",
    "rule",
]
