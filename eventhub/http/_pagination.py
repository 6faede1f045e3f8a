"""Pagination helpers of :class:`~eventhub.http.HttpClient`: every page, never one.

Three schemes cover the APIs eventhub talks to: RFC 8288 ``Link: rel="next"``
headers (GitHub, GitLab), an opaque cursor or page token (Slack, Notion, Jira's
``nextPageToken``, Google) and offsets (Jira Server ``startAt``/``maxResults``).
Each one stops on the API's own end marker and refuses to page in a loop::

    for page in client.paginate_cursor(
        "conversations.history",
        params={"channel": "C123", "limit": 200},
        cursor_param="cursor",
        next_cursor=lambda page: page.get("response_metadata", {}).get("next_cursor"),
    ):
        messages.extend(page["messages"])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urljoin

import requests

from .errors import HttpError

Origin = tuple[str, str, int | None]


class Paginator:
    """The pagination methods, mixed into :class:`~eventhub.http.client.HttpClient`."""

    def _url(self, url_or_path: str) -> str:
        raise NotImplementedError

    def _trusted_origin(self, url: str) -> Origin:
        raise NotImplementedError

    def _request(
        self, method: str, url_or_path: str, *, origin: Origin | None = None, **kw: Any
    ) -> requests.Response:
        raise NotImplementedError

    def _json(self, method: str, url_or_path: str, **kw: Any) -> Any:
        raise NotImplementedError

    def paginate_link(
        self, url_or_path: str, *, params: Any = None, **kw: Any
    ) -> Iterator[requests.Response]:
        """Yield every page of a listing paged with RFC 8288 ``Link: rel="next"``
        (GitHub, GitLab, Okta ...). Credentials only go to the first page's origin.

        Args:
            url_or_path: The first page.
            params: Query parameters of the first page (the next links carry
                their own).
            **kw: Further :meth:`request` arguments for every page.

        Raises:
            HttpError: also when a next link points back to a page already seen.
        """
        url = self._url(url_or_path)
        origin = self._trusted_origin(url)
        response = self._request("GET", url, params=params, origin=origin, **kw)
        yield response
        seen = {response.url}
        while next_url := response.links.get("next", {}).get("url"):
            next_url = urljoin(response.url, next_url)
            if next_url in seen:
                raise HttpError(
                    "GET", next_url, reason="next link loops to a seen page"
                )
            seen.add(next_url)
            response = self._request("GET", next_url, origin=origin, **kw)
            yield response

    def paginate_cursor(
        self,
        url_or_path: str,
        *,
        params: Mapping[str, Any] | None = None,
        cursor_param: str,
        next_cursor: Callable[[Any], str | None],
        method: str = "GET",
        in_body: bool = False,
        **kw: Any,
    ) -> Iterator[Any]:
        """Yield every decoded JSON page of a cursor-paged listing (Slack, Notion,
        Jira's ``nextPageToken``, Google's ``pageToken``).

        Args:
            url_or_path: The listing.
            params: Query parameters of every page.
            cursor_param: Name of the parameter carrying the cursor.
            next_cursor: Takes a page, returns the next cursor; None or "" ends.
            method: The HTTP method (a POST search needs an ``idempotency_key``
                in ``kw`` to be retried).
            in_body: Send the cursor in the JSON body (``kw["json"]``) instead of
                the query.
            **kw: Further :meth:`request` arguments for every page.

        Raises:
            HttpError: also when a cursor repeats (the server pages in a loop).
        """
        query = dict(params or {})
        body = dict(kw.pop("json", None) or {})
        seen: set[str] = set()
        pages = 0
        while True:
            page = self._json(
                method, url_or_path, params=query, json=body or None, **kw
            )
            pages += 1
            yield page
            cursor = next_cursor(page)
            if not cursor:
                return
            if cursor in seen:
                raise HttpError(
                    method,
                    self._url(url_or_path),
                    reason=f"cursor after page {pages} repeats an earlier one"
                    " (the listing loops)",
                )
            seen.add(cursor)
            (body if in_body else query)[cursor_param] = cursor

    def paginate_offset(
        self,
        url_or_path: str,
        *,
        params: Mapping[str, Any] | None = None,
        items: Callable[[Any], Sequence[Any]],
        offset_param: str = "offset",
        limit_param: str = "limit",
        page_size: int = 100,
        start: int = 0,
        total: Callable[[Any], int | None] | None = None,
        **kw: Any,
    ) -> Iterator[Any]:
        """Yield the items of an offset-paged listing (Jira ``startAt``/``maxResults``).

        The offset moves by the items received, so a server that caps the page
        size skips nothing. Without ``total`` a page shorter than ``page_size``
        is the last; with it, the listing ends when ``total`` items are reached
        (or a page is empty).

        Args:
            url_or_path: The listing.
            params: Query parameters of every page.
            items: Takes a page, returns its items.
            offset_param: Name of the offset parameter.
            limit_param: Name of the page-size parameter.
            page_size: Items asked for per page.
            start: The first offset.
            total: Takes a page, returns the number of items in the listing.
            **kw: Further :meth:`request` arguments for every page.
        """
        offset = start
        while True:
            query = {**(params or {}), offset_param: offset, limit_param: page_size}
            page = self._json("GET", url_or_path, params=query, **kw)
            batch = items(page)
            yield from batch
            offset += len(batch)
            count = total(page) if total else None
            if not batch or (count is not None and offset >= count):
                return
            if count is None and len(batch) < page_size:
                return
