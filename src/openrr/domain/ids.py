"""Identifier rules shared by every API version."""

from __future__ import annotations

import re
import uuid

from openrr.errors import InvalidInput

# ARR: "case sensitive, any combination of alphanumeric characters including hyphens and underscores,
# not more than 256 characters". Colons would also break the SDK's continuation tokens.
_RESOURCE_ID = re.compile(r"[A-Za-z0-9_-]{1,256}", re.ASCII)


def is_resource_id(value: str) -> bool:
    return _RESOURCE_ID.fullmatch(value) is not None


def check_resource_id(value: str, *, what: str = "session") -> str:
    if not is_resource_id(value):
        raise InvalidInput(
            f"The {what} id must be 1 to 256 characters of letters, digits, hyphens and underscores.",
            target=f"{what}_id",
        )
    return value


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_account_id(value: str) -> str:
    """Account ids are UUIDs; returns the canonical lower-case form."""
    if _CANONICAL_UUID.fullmatch(value):
        return value  # the form every client sends, checked without building a UUID object
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput("The account id must be a UUID.", target="account_id") from None


def new_uuid() -> str:
    return str(uuid.uuid4())
