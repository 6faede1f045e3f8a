"""``slack`` source: channels indexed one document per thread.

::

    [sources.chat]
    kind = "slack"
    token = { env = "SLACK_BOT_TOKEN" }   # xoxb-...
    channels = ["C0123ABCD", "general"]   # ids or names; default: every channel
                                          # the bot is a member of
    types = ["public_channel", "private_channel"]   # which channels (also "mpim", "im")
    page_size = 200                       # messages a request (Slack's cap: 999)
    lookback_days = 14                    # how far back threads are re-checked
    # rate = 0.8, burst = 5, prune = "every 24h": the defaults

A document is a thread: the parent message and its replies as ``name: text``
lines, in order (a message without replies is a thread of one). Its id is
``<channel id>/<thread ts>``, its title ``#channel: first words of the parent``,
its url the parent's permalink, ``updated_at`` the latest message or edit in it.

**The change feed.** The checkpoint holds, per channel, the latest ``ts`` seen (a
decimal string, compared as a decimal): ``{"team": "T123", "channels": {"C123":
"1712345678.000200"}}``. An incremental sync lists each channel's history
(``conversations.history``, newest first, paged by cursor) back to ``lookback_days``
before that mark and takes every thread whose parent, latest reply
(``latest_reply``) or parent edit (``edited.ts``) is newer than the mark (less the
overlap); a thread with replies is read with ``conversations.replies``. New replies
do not appear in the history as messages, but their parent's ``latest_reply``
moves, so a reply to a thread whose parent is within the lookback is caught.
Not caught until a full sync: a reply to an older thread (unless it is also sent to
the channel), and an edit or deletion of a reply that leaves ``latest_reply`` as it
was. A thread whose parent is deleted leaves the history, and the index at the
next prune (daily by default: listing every thread costs a request per
``page_size`` parents a channel).

The mark a channel gets is never later than the moment its listing began, so a
reply posted while the channel was read is read at the next sync.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from eventhub.documents import (
    Change,
    Checkpoint,
    CheckpointExpired,
    Document,
    SourceError,
)
from eventhub.errors import ConfigError
from eventhub.http import HostNotAllowed, HttpError, HttpTransientError

from .._apisource import APISource
from ._text import display_name, first_words, message_text
from ._webapi import SlackError, SlackWebAPI

__all__ = ["SlackSource"]

_TS = re.compile(r"^\d{1,12}\.\d{1,9}$")
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")
_MICRO = Decimal("0.000001")
_DAY = 86400
#: Message subtypes that are something someone said (the rest is joins, topic
#: changes, pins ...). A deleted parent whose replies stay is a hidden
#: ``tombstone``: its thread is gone, like the parent.
_SAID = frozenset({None, "bot_message", "me_message", "file_share", "thread_broadcast"})
#: Errors that make one channel unreadable, not the whole source.
_CHANNEL_ERRORS = frozenset(
    {"not_in_channel", "channel_not_found", "missing_scope", "access_denied"}
)
_TYPES = frozenset({"public_channel", "private_channel", "mpim", "im"})
_LIST_LIMIT = 200  # channels a request: Slack's recommendation (the cap is 999)
MAX_PAGE_SIZE = 999  # conversations.history and .replies: "limit ... Maximum of 999"


@dataclass(frozen=True, slots=True)
class _Channel:
    id: str
    name: str


class SlackSource(APISource, SlackWebAPI):
    """The threads of Slack channels (see the module docstring).

    Args:
        channels: Channel ids (``C0123ABCD``) or names (``general``, ``#general``);
            default: every channel the token's user (the bot) is a member of.
        types: The kinds of conversation listed when ``channels`` is not given.
        page_size: Messages asked for a request (1 to 999; Slack recommends at most
            200; apps outside the Marketplace get at most 15).
        lookback_days: Threads whose parent is this many days older than a
            channel's latest message are still checked for new replies and edits
            at each sync.
        **config: The HTTP integrations' settings (``token`` ...) and the
            extraction limits.

    Raises:
        ConfigError: for a missing token or a bad setting.
    """

    kind = "slack"
    role = "source"
    default_base_url = "https://slack.com/api/"
    # conversations.history and .replies are Tier 3 (50+ a minute, per method and
    # workspace); one budget for every method keeps clear of all tiers.
    default_rate: ClassVar[float | None] = 0.8
    default_burst: ClassVar[int | None] = 5
    default_prune: ClassVar[float | None] = 24 * 3600.0

    def __init__(
        self,
        *,
        channels: Sequence[str] | None = None,
        types: Sequence[str] = ("public_channel", "private_channel"),
        page_size: int = 200,
        lookback_days: float = 14,
        **config: Any,
    ) -> None:
        where = "slack source"
        if channels is not None and (
            isinstance(channels, str)
            or not all(isinstance(c, str) and c.strip("# ") for c in channels)
        ):
            raise ConfigError(
                f"{where}: channels must be a list of channel ids or names"
            )
        if isinstance(types, str) or not types or not set(types) <= _TYPES:
            raise ConfigError(
                f"{where}: types must be a list of {', '.join(sorted(_TYPES))}"
            )
        if not _whole(page_size) or not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ConfigError(f"{where}: page_size must be from 1 to {MAX_PAGE_SIZE}")
        if not _number(lookback_days) or lookback_days < 0:
            raise ConfigError(f"{where}: lookback_days must be a number of days")
        super().__init__(**config)
        self.channels = [c.strip().lstrip("#") for c in channels] if channels else None
        self.types = list(types)
        self.page_size = page_size
        self.lookback = Decimal(str(lookback_days)) * _DAY
        self._clock: Callable[[], float] = time.time
        self._team_id: str | None = None
        self._team_url: str | None = None
        self._users: dict[str, str] = {}
        self._look_up_users = True
        self._channel_names: dict[str, str] = {}

    # -- the Source API

    def read(self, checkpoint: Any | None, *, overlap: float = 0.0) -> Iterator[Change]:
        """Threads changed since ``checkpoint`` (see the module docstring).

        Raises:
            CheckpointExpired: for a checkpoint of another shape or workspace.
            SlackError: when Slack refuses the token (or anything but a channel).
        """
        marks = _marks(checkpoint)
        self._begin()
        self._users = {}
        self._look_up_users = True
        if checkpoint is not None and checkpoint["team"] != self._team_id:
            raise CheckpointExpired(
                f"the checkpoint is of Slack workspace {checkpoint['team']}, the "
                f"token of {self._team_id}"
            )
        channels = self._channels()
        kept = {c.id: marks[c.id] for c in channels if c.id in marks}
        for channel in channels:
            try:
                mark = yield from self._channel_feed(
                    channel, marks.get(channel.id), overlap
                )
            except SlackError as exc:
                if exc.error not in _CHANNEL_ERRORS:
                    raise
                self.skip(channel.id, _channel_reason(channel, exc))
                continue
            if mark is not None:
                kept[channel.id] = mark
            yield Checkpoint(self._checkpoint(kept))
        if not channels:
            yield Checkpoint(self._checkpoint(kept))

    def fetch(self, id: str) -> Document | None:
        """One thread by ``<channel id>/<thread ts>``; None when it is gone.

        Raises:
            SlackError: when Slack refuses the token, or another error than a
                missing thread or channel.
        """
        channel_id, _, ts = id.partition("/")
        if not _CHANNEL_ID.match(channel_id) or not _TS.match(ts):
            return None
        if self._team_url is None:
            self._begin()
        try:
            channel = _Channel(channel_id, self._channel_name(channel_id))
            messages = self._replies(channel_id, ts)
        except SlackError as exc:
            if exc.error in ("thread_not_found", "message_not_found"):
                return None
            if exc.error not in _CHANNEL_ERRORS:
                raise
            self.skip(id, f"{exc.error}: channel {channel_id} cannot be read")
            return None
        if not messages or messages[0].get("ts") != ts:
            return None  # the ts of a reply, not of a thread
        return self._document(channel, messages)

    def ids(self) -> Iterator[str]:
        """Every thread of every channel: its whole history, page by page.

        Raises:
            SourceError: when a configured channel cannot be found or read (the
                listing would not be complete, so nothing is deleted).
        """
        self._begin()
        taken = len(self.skipped)
        channels = self._channels()
        if len(self.skipped) > taken:
            raise SourceError(
                f"channel {self.skipped[-1].id} not found: threads not listed"
            )
        for channel in channels:
            try:
                for body in self._pages(
                    "conversations.history", channel=channel.id, limit=self.page_size
                ):
                    for message in _messages(body):
                        if _is_parent(message) and message.get("subtype") in _SAID:
                            yield f"{channel.id}/{message['ts']}"
            except SlackError as exc:
                if exc.error not in _CHANNEL_ERRORS:
                    raise
                raise SourceError(
                    f"{_channel_reason(channel, exc)}: threads not listed"
                ) from None

    # -- reading a channel

    def _channel_feed(
        self, channel: _Channel, mark: Decimal | None, overlap: float
    ) -> Generator[Document, None, Decimal | None]:
        """The changed threads of one channel; returns its new mark."""
        began = Decimal(repr(self._clock())).quantize(_MICRO)
        since = None if mark is None else mark - Decimal(repr(overlap))
        params: dict[str, Any] = {"channel": channel.id, "limit": self.page_size}
        if mark is not None:
            oldest = mark - max(Decimal(repr(overlap)), self.lookback)
            if oldest > 0:
                params["oldest"] = _ts_text(oldest)
        seen = mark
        listed: set[str] = set()
        broadcast: set[str] = set()
        for body in self._pages("conversations.history", **params):
            for message in _messages(body):
                ts = Decimal(message["ts"])
                if not _is_parent(message):
                    # A reply also sent to the channel: its thread changed.
                    seen = _latest(seen, ts)
                    if since is None or ts > since:
                        broadcast.add(str(message["thread_ts"]))
                    continue
                if message.get("subtype") not in _SAID:
                    continue
                listed.add(message["ts"])
                latest = _latest(ts, _ts(message.get("latest_reply")), _edited(message))
                seen = _latest(seen, latest)
                if since is not None and latest is not None and latest <= since:
                    continue
                document = self._thread(channel, message)
                if document is not None:
                    yield document
        for root in sorted(broadcast - listed):
            document = self._thread(channel, {"ts": root, "reply_count": 1})
            if document is not None:
                yield document
        if seen is None:
            return mark
        seen = min(seen, began)
        return seen if mark is None else max(mark, seen)

    def _thread(self, channel: _Channel, parent: Mapping[str, Any]) -> Document | None:
        """The document of a thread listed in the history (its replies read when
        it has some); a thread that could not be read is recorded as failed."""
        if not parent.get("reply_count") and not parent.get("latest_reply"):
            return self._document(channel, [parent])
        id = f"{channel.id}/{parent['ts']}"
        try:
            messages = self._replies(channel.id, str(parent["ts"]))
        except (SlackError, HttpError) as exc:
            if not _per_document(exc):
                raise
            if isinstance(exc, SlackError) and exc.error == "thread_not_found":
                return None
            self.fail(id, str(exc))
            return None
        if not messages or messages[0].get("ts") != parent["ts"]:
            return None
        return self._document(channel, messages)

    def _replies(self, channel_id: str, ts: str) -> list[dict[str, Any]]:
        """A thread's messages in order (``conversations.replies``, every page; a
        parent repeated at the top of a page is taken once)."""
        found: dict[str, dict[str, Any]] = {}
        for body in self._pages(
            "conversations.replies", channel=channel_id, ts=ts, limit=self.page_size
        ):
            for message in _messages(body):
                found.setdefault(message["ts"], message)
        return sorted(found.values(), key=lambda m: Decimal(m["ts"]))

    def _document(
        self, channel: _Channel, messages: Sequence[Mapping[str, Any]]
    ) -> Document | None:
        parent = messages[0]
        if parent.get("subtype") not in _SAID:
            return None
        ts = str(parent["ts"])
        id = f"{channel.id}/{ts}"
        lines: list[str] = []
        latest: Decimal | None = None
        for message in messages:
            if message is not parent and message.get("subtype") not in _SAID:
                continue
            latest = _latest(latest, _ts(message.get("ts")), _edited(message))
            text = message_text(message, self._user_name, self._channel_title)
            if text:
                lines.append(f"{self._author(message)}: {text}")
        if not lines:
            return None
        updated_at = _time(latest) if latest is not None else None
        text = "\n".join(lines)
        if len(text) > self.limits.max_chars:
            self.skip(
                id,
                f"over max_chars ({len(text)} > {self.limits.max_chars})",
                updated_at,
            )
            return None
        opening = message_text(parent, self._user_name, self._channel_title)
        return Document(
            id=id,
            source=self.name,
            title=f"#{channel.name}: {first_words(opening) or 'message'}",
            text=text,
            url=self._permalink(channel.id, ts),
            updated_at=updated_at,
            metadata={
                "channel": channel.id,
                "channel_name": channel.name,
                "thread_ts": ts,
                "replies": len(messages) - 1,
            },
        )

    # -- the workspace: team, channels, users

    def _begin(self) -> None:
        """``auth.test``: whose token this is, and the team URL for permalinks."""
        body = self._api("auth.test")
        url, team = body.get("url"), body.get("team_id")
        self._team_url = url if isinstance(url, str) and url else ""
        if self._team_url and not self._team_url.endswith("/"):
            self._team_url += "/"
        self._team_id = team if isinstance(team, str) else None

    def _channels(self) -> list[_Channel]:
        """The channels to read: the configured ones, or every one the bot is in.
        A configured name that no channel has is skipped with the reason."""
        types = ",".join(self.types)
        if self.channels is None:
            listed = self._listing("users.conversations", types=types)
            return [_Channel(c["id"], self._remember(c)) for c in listed]
        listed = self._listing("conversations.list", types=types)
        names = {self._remember(c): c["id"] for c in listed}
        chosen: dict[str, _Channel] = {}
        for wanted in self.channels:
            if wanted in self._channel_names:
                chosen.setdefault(wanted, _Channel(wanted, self._channel_names[wanted]))
            elif wanted in names:
                chosen.setdefault(names[wanted], _Channel(names[wanted], wanted))
            elif _CHANNEL_ID.match(wanted):  # not listed to us: history will say why
                chosen.setdefault(wanted, _Channel(wanted, wanted))
            else:
                self.skip(f"#{wanted}", f"channel_not_found: no channel #{wanted}")
        return list(chosen.values())

    def _listing(self, method: str, **params: Any) -> list[dict[str, Any]]:
        found = []
        for body in self._pages(method, limit=_LIST_LIMIT, **params):
            channels = body.get("channels")
            for channel in channels if isinstance(channels, list) else []:
                if isinstance(channel, dict) and isinstance(channel.get("id"), str):
                    found.append(channel)
        return found

    def _remember(self, channel: Mapping[str, Any]) -> str:
        name = channel.get("name")
        name = name if isinstance(name, str) and name else str(channel["id"])
        self._channel_names[channel["id"]] = name
        return name

    def _channel_name(self, channel_id: str) -> str:
        if channel_id not in self._channel_names:
            info = self._api("conversations.info", channel=channel_id).get("channel")
            self._remember(info if isinstance(info, dict) else {"id": channel_id})
        return self._channel_names[channel_id]

    def _channel_title(self, channel_id: str) -> str:
        """A channel's name for ``<#C123>`` in a text: from what was listed."""
        return self._channel_names.get(channel_id, channel_id)

    def _user_name(self, user_id: str) -> str:
        """A user's display name (``users.info``, once a sync); the id when Slack
        has no such user or the token may not read users."""
        if user_id not in self._users:
            name = None
            if self._look_up_users:
                try:
                    user = self._api("users.info", user=user_id).get("user")
                except SlackError as exc:
                    if exc.refused_token:
                        raise
                    if exc.error != "user_not_found":
                        self._look_up_users = False  # missing_scope: ask no more
                    user = None
                name = display_name(user) if isinstance(user, dict) else None
            self._users[user_id] = name or user_id
        return self._users[user_id]

    def _author(self, message: Mapping[str, Any]) -> str:
        bot = message.get("bot_profile")
        bot_name = bot.get("name") if isinstance(bot, dict) else None
        if message.get("subtype") == "bot_message" or not message.get("user"):
            for name in (message.get("username"), bot_name, message.get("bot_id")):
                if isinstance(name, str) and name:
                    return name
        user = message.get("user")
        return self._user_name(user) if isinstance(user, str) and user else "unknown"

    def _permalink(self, channel_id: str, ts: str) -> str | None:
        if not self._team_url:
            return None
        return f"{self._team_url}archives/{channel_id}/p{ts.replace('.', '')}"

    def _checkpoint(self, marks: Mapping[str, Decimal]) -> dict[str, Any]:
        return {
            "team": self._team_id,
            "channels": {c: _ts_text(m) for c, m in sorted(marks.items())},
        }

    # -- the Web API

    def _api(self, api_method: str, **params: Any) -> dict[str, Any]:
        return self.call("GET", api_method, params=params)

    def _pages(self, api_method: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of a cursor-paged method, until ``next_cursor`` is empty.

        Raises:
            SourceError: when Slack hands back a cursor it gave before.
        """
        cursors: set[str] = set()
        while True:
            body = self._api(api_method, **params)
            yield body
            metadata = body.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not isinstance(cursor, str) or not cursor:
                return
            if cursor in cursors:
                raise SourceError(f"Slack {api_method} repeated the cursor {cursor!r}")
            cursors.add(cursor)
            params["cursor"] = cursor


def _marks(checkpoint: Any | None) -> dict[str, Decimal]:
    """The per-channel marks of a checkpoint (none for None).

    Raises:
        CheckpointExpired: for a checkpoint of another shape.
    """
    if checkpoint is None:
        return {}
    channels = checkpoint.get("channels") if isinstance(checkpoint, dict) else None
    if (
        isinstance(channels, dict)
        and set(checkpoint) == {"team", "channels"}
        and isinstance(checkpoint["team"], str | None)
        and all(
            isinstance(c, str) and _CHANNEL_ID.match(c) and isinstance(t, str)
            for c, t in channels.items()
        )
        and all(_TS.match(t) for t in channels.values())
    ):
        return {c: Decimal(t) for c, t in channels.items()}
    raise CheckpointExpired(f"not a Slack checkpoint: {str(checkpoint)[:80]!r}")


def _messages(body: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """The messages of a page that have a ``ts`` (a deleted one has gone)."""
    messages = body.get("messages")
    for message in messages if isinstance(messages, list) else []:
        if (
            isinstance(message, dict)
            and isinstance(message.get("ts"), str)
            and _TS.match(message["ts"])
            and not message.get("hidden")
        ):
            yield message


def _is_parent(message: Mapping[str, Any]) -> bool:
    root = message.get("thread_ts")
    return not isinstance(root, str) or root == message["ts"] or not _TS.match(root)


def _ts(value: Any) -> Decimal | None:
    if isinstance(value, str) and _TS.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern allows none
            return None
    return None


def _edited(message: Mapping[str, Any]) -> Decimal | None:
    edited = message.get("edited")
    return _ts(edited.get("ts")) if isinstance(edited, dict) else None


def _latest(*values: Decimal | None) -> Decimal | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _ts_text(value: Decimal) -> str:
    return str(max(value, Decimal(0)).quantize(_MICRO))


def _time(ts: Decimal) -> datetime:
    seconds = int(ts)
    micro = int((ts - seconds) * 1_000_000)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=micro)


def _channel_reason(channel: _Channel, exc: SlackError) -> str:
    what = {
        "not_in_channel": "the bot is not a member",
        "channel_not_found": "no such channel, or not visible to the token",
        "missing_scope": f"the token lacks the scope {exc.needed or '?'}",
    }.get(exc.error, "not readable")
    return f"{exc.error}: #{channel.name} ({channel.id}): {what}"


def _per_document(exc: HttpError) -> bool:
    """Whether a failure reading one thread is that thread's own (retried at the
    next sync) rather than the source's (the sync fails)."""
    if isinstance(exc, SlackError):
        return not exc.refused_token
    return not isinstance(exc, HttpTransientError | HostNotAllowed) and (
        exc.status is not None
    )


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
