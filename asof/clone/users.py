"""Login roles, folded from catalog events.

A role is kept as a SCRAM-SHA-256 verifier (salt, iteration count, StoredKey, ServerKey,
RFC 5802/7677), never as its password: what the catalog log holds cannot log anyone in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

CREATE_USER = "create_user"
DROP_USER = "drop_user"


@attrs.frozen
class UserRecord:
    name: str
    verifier: str  # SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>, base64
    created: int  # µs


class Users:
    def __init__(self) -> None:
        self.by_name: dict[str, UserRecord] = {}

    def handlers(self) -> dict[str, Any]:
        return {CREATE_USER: self._on_create, DROP_USER: self._on_drop}

    def _on_create(self, data: Mapping[str, Any], txn: Any) -> None:
        self.by_name[data["name"]] = UserRecord(data["name"], data["verifier"], txn.ts.physical)

    def _on_drop(self, data: Mapping[str, Any], txn: Any) -> None:
        self.by_name.pop(data["name"], None)

    def get(self, name: str) -> UserRecord | None:
        return self.by_name.get(name)

    def names(self) -> list[str]:
        return sorted(self.by_name)
