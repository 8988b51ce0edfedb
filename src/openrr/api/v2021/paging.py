"""Paging of the 2021 list operations: ``$skipToken`` is the last id of the previous page, and ``@nextLink``
carries it (with ``api-version``, since the SDK follows the link verbatim: notes §9.5)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Query, Request

from openrr.domain.ids import is_resource_id
from openrr.errors import InvalidInput

SkipToken = Annotated[str | None, Query(alias="$skipToken", description="Continuation from @nextLink")]


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


def check_skip_token(token: str | None) -> None:
    # Our tokens are ids; anything else was not issued by us.
    if token is not None and not is_resource_id(token):
        raise InvalidInput("The $skipToken is not valid.", target="$skipToken")


T = TypeVar("T", bound=_Identified)


def page(
    request: Request,
    api_version: str,
    name: str,
    rows: Sequence[T],
    page_size: int,
    body_of: Callable[[T], Any],
) -> dict[str, object]:
    """The list body of ``rows``, fetched with one row more than a page: that row tells whether another
    page exists, without a count query."""
    body: dict[str, object] = {name: [body_of(row) for row in rows[:page_size]]}
    if len(rows) > page_size:
        body["@nextLink"] = str(
            request.url.replace_query_params(
                **{"api-version": api_version, "$skipToken": rows[page_size - 1].id}
            )
        )
    return body
