"""A loopback alert sink: the webhook receiver LiteLLM's alerting posts to.

It listens on 127.0.0.1, port 0, for the deployment's life; `/slack` takes Slack-shaped posts
(SLACK_WEBHOOK_URL, a JSON body with `text`), `/webhook` generic ones (WEBHOOK_URL, LiteLLM's
`WebhookEvent`: `event`, `token`, `user_id`, `team_id`, ...). Every POST is kept with the time
it arrived (on the scenario clock when one is given, else UTC) and its body. Bodies are bounded
(1 MiB each, 10,000 posts) so a runaway proxy cannot fill memory.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

MAX_BODY = 1 << 20
MAX_POSTS = 10_000
CHANNELS = ("slack", "webhook")


@dataclass(frozen=True)
class Alert:
    """One POST the sink received."""

    channel: str  # "slack" or "webhook"
    at: datetime
    body: Any  # the parsed JSON, or the text when it is not JSON
    raw: str = field(repr=False, default="")

    @property
    def event(self) -> str | None:
        """The generic webhook's `event` (e.g. `soft_budget_crossed`); None for Slack posts."""
        return self.body.get("event") if isinstance(self.body, dict) else None

    def is_type(self, alert_type: str) -> bool:
        """The webhook's `event` is `alert_type`; a Slack text names it (`soft_budget_crossed`
        matches "Soft Budget Crossed", case and `_`/space aside)."""
        if self.event is not None:
            return self.event == alert_type
        wanted = alert_type.replace("_", " ").lower()
        return wanted in self.raw.replace("_", " ").lower()

    def mentions(self, *values: str) -> bool:
        """Any of `values` (an entity's id, token hash or alias) appears in the body."""
        return any(v and v in self.raw for v in values)


def one_channel(alerts: list[Alert]) -> list[Alert]:
    """The posts that count one per alert: the generic webhook's (one post per alert event), or
    the Slack ones when no webhook post is among them (Slack posts batch alerts, "[Num Alerts: N]",
    so a count that mixed both would count one alert twice)."""
    webhook = [a for a in alerts if a.channel == "webhook"]
    return webhook or alerts


class AlertSink:
    """The receiver; `start()` binds it, `stop()` closes it (idempotent)."""

    name = "alert_sink"

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._alerts: list[Alert] = []
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: a fault injector's interface: the sink injects none
        self.events: list = []

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{channel}"

    def start(self) -> "AlertSink":
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                raw = self.rfile.read(length).decode("utf-8", "replace")
                channel = self.path.strip("/").split("?")[0]
                if channel not in CHANNELS:
                    self.send_response(404)
                    self.end_headers()
                    return
                sink.record(channel, raw)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:  # quiet: the run's output is the report
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="alert-sink", daemon=True)
        self._thread.start()
        return self

    def record(self, channel: str, raw: str) -> None:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        with self._cond:
            if len(self._alerts) < MAX_POSTS:
                self._alerts.append(Alert(channel, self.clock(), body, raw))
            self._cond.notify_all()

    @property
    def alerts(self) -> list[Alert]:
        with self._cond:
            return list(self._alerts)

    def wait_for(self, match: Callable[[Alert], bool], count: int, within: float,
                 pick: Callable[[list[Alert]], list[Alert]] = list) -> list[Alert]:
        """The matching alerts (those of them `pick` keeps) once `count` of them arrived, or what
        arrived in `within` seconds."""
        deadline = time.monotonic() + within
        with self._cond:
            while True:
                found = pick([a for a in self._alerts if match(a)])
                left = deadline - time.monotonic()
                if len(found) >= count or left <= 0:
                    return found
                self._cond.wait(left)

    def clear(self) -> None:
        with self._cond:
            self._alerts.clear()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
