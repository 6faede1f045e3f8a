"""A stateful fake of the Slack Web API on 127.0.0.1.

Built from the real bodies in ``../shared/realdata/slack`` (Slack's documented
examples from its OpenAPI spec: ``auth.test``, ``conversations.*``, ``users.*`` and
their error bodies), it holds a workspace (channels, the bot's memberships,
messages, threads, users) that tests post to, edit and delete from, and serves:

* ``auth.test``;
* ``conversations.list`` (``types``, ``exclude_archived``) and
  ``users.conversations`` (the bot's channels), ``conversations.info``;
* ``conversations.history``: parents and replies also sent to the channel, newest
  first, ``oldest`` / ``latest`` exclusive unless ``inclusive``; a parent carries
  ``reply_count``, ``reply_users``, ``latest_reply`` as Slack's do;
* ``conversations.replies``: the parent then its replies, oldest first; every page
  after the first repeats the parent at its top; ``thread_not_found`` for an
  unknown ts;
* ``users.info`` / ``users.list``;

all cursor-paged (``limit``, ``cursor``, ``response_metadata.next_cursor``: opaque
base64, as Slack's), ``limit`` capped at :attr:`FakeSlack.max_limit` (999, as Slack
documents; 15 for apps outside the Marketplace). GET query or POST form both work.
Every request needs ``Authorization: Bearer <token>``: none is ``not_authed``, a
wrong one ``invalid_auth``, answered as Slack does, HTTP 200 with ``ok: false``. A
bot that is not in a channel gets ``not_in_channel`` from its history (a private
one: ``channel_not_found``). Requests are counted by method; 429 ``ratelimited``
with ``Retry-After``, failures from now on and broken threads can be injected.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REALDATA = Path(__file__).resolve().parents[3] / "shared" / "realdata" / "slack"
EXAMPLES = REALDATA / "web-api-examples"
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
MAX_LIMIT = 999
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    """One of Slack's documented bodies (``conversations.history.ok``)."""
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def ts_of(moment: datetime, sequence: int = 0) -> str:
    """A Slack ``ts`` for a moment (``sequence`` tells apart messages of one
    second, as Slack's last digits do)."""
    return f"{int(moment.timestamp())}.{sequence:06d}"


class FakeSlack:
    """One Slack workspace behind a loopback HTTP server (see the module docstring).

    Attributes:
        token: The bot token it accepts.
        users: User objects by id (the realdata ones to begin with).
        channels: Channel state by id.
        calls: Requests served, by API method.
        log: Every request: ``(method, params)``.
        max_limit: The largest ``limit`` honoured.
        retry_after: The ``Retry-After`` of injected rate limits.
    """

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        auth = example("auth.test.ok")
        self.team_id: str = auth["team_id"]
        self.team_url: str = auth["url"]
        self.bot_user: str = auth["user_id"]
        self.users: dict[str, dict[str, Any]] = {}
        for user in example("users.list.ok")["members"]:
            self.users[user["id"]] = user
        self.users["W012A3CDE"] = example("users.info.ok")["user"]
        self.channels: dict[str, dict[str, Any]] = {}
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, dict[str, str]]] = []
        self.max_limit = MAX_LIMIT
        self.retry_after = "0"
        self._channel = example("conversations.list.ok")["channels"][0]
        self._message = example("conversations.history.ok")["messages"][0]
        self._limits: dict[str, int] = {}  # method -> 429s still to answer
        self._after: dict[str, int] = {}  # method -> calls to serve first
        self._failing: int | None = None
        self._broken: dict[str, int | str] = {}  # "C/ts" -> status or "garbage"
        self._scripts: dict[str, list[bytes]] = {}  # method -> bodies to serve
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._sequence = 0

    # -- the workspace, as people change it

    def add_channel(
        self,
        name: str,
        id: str | None = None,
        *,
        member: bool = True,
        private: bool = False,
    ) -> str:
        """A channel (the bot in it unless ``member`` is false); its id."""
        id = id or f"C{len(self.channels) + 1:08d}"
        channel = copy.deepcopy(self._channel)
        channel.update(
            id=id,
            name=name,
            name_normalized=name,
            is_member=member,
            is_private=private,
            is_general=False,
        )
        self.channels[id] = {"info": channel, "messages": {}}
        return id

    def post(
        self,
        channel: str,
        text: str,
        *,
        user: str | None = "W012A3CDE",
        at: datetime | None = None,
        thread: str | None = None,
        broadcast: bool = False,
        **fields: Any,
    ) -> str:
        """Post a message (a reply with ``thread``, also sent to the channel with
        ``broadcast``); its ts."""
        self._sequence += 1
        ts = ts_of(at or START, self._sequence)
        message = copy.deepcopy(self._message)
        message.update(text=text, ts=ts, **fields)
        if user is None:
            message.pop("user", None)
        else:
            message["user"] = user
        if thread is not None:
            message["thread_ts"] = thread
            message["parent_user_id"] = self._messages(channel)[thread].get("user")
            if broadcast:
                message["subtype"] = "thread_broadcast"
        self._messages(channel)[ts] = message
        return ts

    def edit(self, channel: str, ts: str, text: str, at: datetime) -> None:
        """Edit a message: new text, ``edited.ts`` the time of the edit."""
        message = self._messages(channel)[ts]
        message["text"] = text
        message["edited"] = {"user": message.get("user"), "ts": ts_of(at, 999999)}

    def delete(self, channel: str, ts: str) -> None:
        """Delete a message; a parent with replies leaves a tombstone, as in Slack."""
        messages = self._messages(channel)
        if any(m.get("thread_ts") == ts and m["ts"] != ts for m in messages.values()):
            messages[ts] = {
                "type": "message",
                "subtype": "tombstone",
                "text": "This message was deleted.",
                "user": "USLACKBOT",
                "hidden": True,
                "ts": ts,
                "thread_ts": ts,
            }
        else:
            del messages[ts]

    def add_user(self, id: str, display_name: str, real_name: str = "") -> None:
        user = copy.deepcopy(self.users["W012A3CDE"])
        user.update(id=id, name=display_name.lower(), real_name=real_name)
        user["profile"].update(display_name=display_name, real_name=real_name)
        self.users[id] = user

    # -- faults

    def ratelimit(self, method: str, times: int = 1, *, after: int = 0) -> None:
        """Answer ``method`` with 429 ``ratelimited`` ``times`` times, once it has
        been served ``after`` more times."""
        self._limits[method] = times
        self._after[method] = after

    def fail_from_now(self, status: int = 500) -> None:
        self._failing = status

    def heal(self) -> None:
        self._failing = None

    def script(self, method: str, bodies: list[dict[str, Any]]) -> None:
        """Answer the next calls of ``method`` with these bodies, verbatim."""
        self._scripts[method] = [json.dumps(b).encode() for b in bodies]

    def put_message(self, channel: str, message: dict[str, Any]) -> None:
        """Store a message object as it is (a real one from realdata)."""
        self._messages(channel)[message["ts"]] = copy.deepcopy(message)

    def break_thread(self, channel: str, ts: str, status: int | str = 404) -> None:
        """Make ``conversations.replies`` of one thread answer ``status`` (or an
        unparsable body for ``"garbage"``)."""
        self._broken[f"{channel}/{ts}"] = status

    @property
    def requests(self) -> int:
        return sum(self.calls.values())

    # -- the server

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/"

    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._serve(parse_qs(urlsplit(self.path).query))

            def do_POST(self) -> None:  # noqa: N802
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size).decode()
                if self.headers.get("Content-Type", "").startswith("application/json"):
                    form = {k: [str(v)] for k, v in json.loads(body or "{}").items()}
                else:
                    form = parse_qs(body)
                self._serve(form)

            def _serve(self, form: dict[str, list[str]]) -> None:
                method = urlsplit(self.path).path.rsplit("/", 1)[-1]
                params = {k: v[-1] for k, v in form.items()}
                status, headers, body = fake._answer(
                    method, params, self.headers.get("Authorization")
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- answering

    def _answer(
        self, method: str, params: dict[str, str], authorization: str | None
    ) -> tuple[int, dict[str, str], bytes]:
        json_type = {"Content-Type": "application/json; charset=utf-8"}
        with self._lock:
            self.calls[method] += 1
            self.log.append((method, params))
            if self._failing is not None:
                return self._failing, {"Content-Type": "text/html"}, b"<h1>Error</h1>"
            if self._limits.get(method):
                if self._after.get(method):
                    self._after[method] -= 1
                else:
                    self._limits[method] -= 1
                    body = {"ok": False, "error": "ratelimited"}
                    headers = {**json_type, "Retry-After": self.retry_after}
                    return 429, headers, json.dumps(body).encode()
            if not authorization or not authorization.startswith("Bearer "):
                return 200, json_type, _error("not_authed")
            if authorization != f"Bearer {self.token}":
                return 200, json_type, json.dumps(example("auth.test.error")).encode()
            if self._scripts.get(method):
                return 200, json_type, self._scripts[method].pop(0)
            handler = getattr(self, "_" + method.replace(".", "_"), None)
            if handler is None:
                return 200, json_type, _error("unknown_method")
            answer = handler(params)
            if isinstance(answer, tuple):
                return answer
            return 200, json_type, json.dumps(answer).encode()

    def _limit(self, params: dict[str, str], default: int) -> int:
        return max(1, min(int(params.get("limit") or default), self.max_limit))

    def _page(
        self,
        items: list[Any],
        params: dict[str, str],
        key: str,
        default: int = 100,
        render: Callable[[Any], Any] = lambda item: item,
    ) -> dict[str, Any]:
        """One page of ``items``, each of the page rendered as the API shows it:
        only the page, so a listing costs what it returns."""
        start = _offset(params.get("cursor"))
        limit = self._limit(params, default)
        page = [render(item) for item in items[start : start + limit]]
        more = start + limit < len(items)
        cursor = _cursor(start + limit) if more else ""
        return {
            "ok": True,
            key: page,
            "has_more": more,
            "response_metadata": {"next_cursor": cursor},
        }

    def _auth_test(self, params: dict[str, str]) -> dict[str, Any]:
        body = example("auth.test.ok")
        body.update(team_id=self.team_id, url=self.team_url)
        return body

    def _listed(self, params: dict[str, str], members_only: bool) -> list[Any]:
        types = set((params.get("types") or "public_channel").split(","))
        found = []
        for channel in self.channels.values():
            info = channel["info"]
            kind = "private_channel" if info["is_private"] else "public_channel"
            if kind not in types or (members_only and not info["is_member"]):
                continue
            if info["is_private"] and not info["is_member"]:
                continue  # private channels are listed to their members only
            if params.get("exclude_archived") in ("true", "1") and info["is_archived"]:
                continue
            found.append(copy.deepcopy(info))
        return found

    def _conversations_list(self, params: dict[str, str]) -> dict[str, Any]:
        return self._page(self._listed(params, False), params, "channels")

    def _users_conversations(self, params: dict[str, str]) -> dict[str, Any]:
        channels = self._listed(params, True)
        for channel in channels:
            channel.pop("is_member", None)  # users.conversations has no is_member
        return self._page(channels, params, "channels")

    def _conversations_info(self, params: dict[str, str]) -> Any:
        channel = self.channels.get(params.get("channel", ""))
        if channel is None:
            return example("conversations.info.error")
        return {"ok": True, "channel": copy.deepcopy(channel["info"])}

    def _readable(self, channel_id: str) -> bytes | None:
        channel = self.channels.get(channel_id)
        if channel is None or (
            channel["info"]["is_private"] and not channel["info"]["is_member"]
        ):
            return json.dumps(example("conversations.history.error")).encode()
        if not channel["info"]["is_member"]:
            return _error("not_in_channel")
        return None

    def _conversations_history(self, params: dict[str, str]) -> Any:
        refused = self._readable(params.get("channel", ""))
        if refused is not None:
            return 200, {"Content-Type": "application/json"}, refused
        messages = self._messages(params["channel"])
        oldest = Decimal(params.get("oldest") or "0")
        latest = Decimal(params["latest"]) if params.get("latest") else None
        inclusive = params.get("inclusive") in ("true", "1")
        threads = _threads(messages)
        shown = []
        for ts, message in sorted(
            messages.items(), key=lambda item: Decimal(item[0]), reverse=True
        ):
            moment = Decimal(ts)
            if moment < oldest or (moment == oldest and not inclusive):
                continue
            if latest is not None and (
                moment > latest or (moment == latest and not inclusive)
            ):
                continue
            root = message.get("thread_ts")
            if root not in (None, ts) and message.get("subtype") != "thread_broadcast":
                continue  # replies live in their thread
            if message.get("hidden") and not threads.get(ts):
                continue
            shown.append(message)
        return self._page(
            shown,
            params,
            "messages",
            render=lambda message: self._with_thread(threads, message),
        )

    def _with_thread(
        self, threads: dict[str, list[Any]], message: dict[str, Any]
    ) -> Any:
        shown = copy.deepcopy(message)
        replies = threads.get(message["ts"], [])
        if replies and message.get("thread_ts") in (None, message["ts"]):
            shown["thread_ts"] = message["ts"]
            shown["reply_count"] = len(replies)
            shown["reply_users"] = sorted({r.get("user") for r in replies} - {None})
            shown["reply_users_count"] = len(shown["reply_users"])
            shown["latest_reply"] = replies[-1]["ts"]
        return shown

    def _conversations_replies(self, params: dict[str, str]) -> Any:
        refused = self._readable(params.get("channel", ""))
        if refused is not None:
            return 200, {"Content-Type": "application/json"}, refused
        messages = self._messages(params["channel"])
        ts = params.get("ts", "")
        broken = self._broken.get(f"{params['channel']}/{ts}")
        if broken == "garbage":
            return 200, {"Content-Type": "application/json"}, b'{"ok": tru'
        if broken is not None:
            return int(broken), {"Content-Type": "text/html"}, b"<h1>Not Found</h1>"
        message = messages.get(ts)
        if message is None:
            return example("conversations.replies.error")
        root = message.get("thread_ts") or ts
        threads = _threads(messages)
        parent = self._with_thread(threads, messages[root])
        thread = [parent, *map(copy.deepcopy, threads.get(root, []))]
        page = self._page(thread, params, "messages", default=1000)
        if _offset(params.get("cursor")) > 0:
            page["messages"].insert(0, parent)
        return page

    def _users_info(self, params: dict[str, str]) -> dict[str, Any]:
        user = self.users.get(params.get("user", ""))
        if user is None:
            return example("users.info.error")
        return {"ok": True, "user": copy.deepcopy(user)}

    def _users_list(self, params: dict[str, str]) -> dict[str, Any]:
        return self._page(list(self.users.values()), params, "members", default=1000)

    def _messages(self, channel: str) -> dict[str, dict[str, Any]]:
        return self.channels[channel]["messages"]


def _error(code: str) -> bytes:
    return json.dumps({"ok": False, "error": code}).encode()


def _cursor(offset: int) -> str:
    return base64.b64encode(f"next:{offset}".encode()).decode()


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    return int(base64.b64decode(cursor).decode().split(":", 1)[1])


class SlackHarness:
    """A ``slack`` source reading one channel of a :class:`FakeSlack`: a document
    is a thread whose parent says the title and the text; an edit edits the
    parent, as a person fixing a message would."""

    kind = "slack"

    def __init__(self, tmp_path: Path, request: Any = None) -> None:
        self.fake = FakeSlack().start()
        if request is not None:
            request.addfinalizer(self.fake.stop)
        self.channel = self.fake.add_channel("contract")
        self._ts: dict[str, str] = {}

    def source(self, **settings: Any) -> Any:
        from eventhub.integrations.slack import SlackSource

        source = SlackSource(
            token=self.fake.token,
            base_url=self.fake.url,
            allow_private=True,
            rate=None,
            sleep=lambda seconds: None,
            **settings,
        )
        source.name = "contract"
        return source

    def put(self, key: str, title: str, text: str, updated_at: datetime) -> None:
        if key in self._ts:
            self.fake.edit(self.channel, self._ts[key], f"{title}: {text}", updated_at)
        else:
            self._ts[key] = self.fake.post(
                self.channel, f"{title}: {text}", at=updated_at
            )

    def delete(self, key: str) -> None:
        self.fake.delete(self.channel, self._ts[key])

    def id_of(self, key: str) -> str:
        return f"{self.channel}/{self._ts[key]}"

    def fail_from_now(self, status: int = 500) -> None:
        self.fake.fail_from_now(status)

    def heal(self) -> None:
        self.fake.heal()

    def close(self) -> None:
        self.fake.stop()

    @property
    def requests(self) -> int:
        return self.fake.requests


def _threads(messages: dict[str, Any]) -> dict[str, list[Any]]:
    """The replies of every thread of a channel's messages, oldest first, by the
    ``ts`` of the thread's parent: one pass over the channel."""
    threads: dict[str, list[Any]] = {}
    for message in messages.values():
        root = message.get("thread_ts")
        if root is not None and message["ts"] != root:
            threads.setdefault(root, []).append(message)
    for replies in threads.values():
        replies.sort(key=lambda m: Decimal(m["ts"]))
    return threads
