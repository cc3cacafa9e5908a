"""A fake LLM provider on 127.0.0.1 (port 0): the proxy's models point at it with `api_base`, so
LiteLLM's own provider code and cost map price the calls, not `mock_response`.

    provider = FakeProvider().start()          # provider.openai_base, provider.anthropic_base
    provider.script(Behaviour(status=429), times=2)   # the next two requests, then the default
    provider.script(Behaviour(status=500), times=None, model="free")  # every call to base_for("free")
    provider.unscript_models()                 # withdraw the per-model scripts
    provider.default = Behaviour(completion_tokens=50)
    provider.script(Behaviour(hold="h1"))     # answered only after provider.release("h1")
    provider.wait_held("h1", 1, timeout=10)
    provider.release("h1")
    provider.stop()                            # releases every held request, closes the server

It answers `POST .../chat/completions` (OpenAI; `stream: true` as server-sent events, with the
final usage chunk when `stream_options.include_usage`) and `POST .../messages` (Anthropic, both
plain and `stream: true` events). Each request takes the next Behaviour scripted for its model
(the `model_name` in the path of `base_for(name)`), else the next scripted for any, else the
default: token counts, latency, an error status, a stream cut after N chunks, a hold.

Bounds: a held request waits at most MAX_HOLD_S; latency at most MAX_LATENCY_MS; the server
threads are daemons and `stop()` (also run at exit) ends every wait at once.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_HOLD_S = 120.0
MAX_LATENCY_MS = 60_000
MAX_BODY = 4 * 1024 * 1024
#: requests kept in `requests`: every proxy has a fake provider, and a shared proxy (`serve`, the
#: daemon) answers scenario after scenario; the oldest half goes once this many are logged
MAX_LOGGED = 50_000
MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
MODEL_PATH = re.compile(r"/m/([A-Za-z0-9_.-]{1,64})/")


@dataclass(frozen=True)
class Behaviour:
    """How the provider answers one request."""

    prompt_tokens: int = 10
    completion_tokens: int = 20
    latency_ms: int = 0
    status: int = 200             # != 200: an error body of the provider's shape, with this status
    cut_after_chunks: int | None = None  # streaming: close the connection after this many chunks
    chunks: int = 4               # streaming: content chunks before the finish (and usage) chunks
    chunk_delay_ms: int = 0       # streaming: pause before each chunk after the first
    hold: str | None = None       # wait until release(hold) (or stop, or MAX_HOLD_S) before answering
    usage_cost: float | None = None  # OpenAI shape: a provider-stated `usage.cost` (as OpenRouter and others send)

    def __post_init__(self) -> None:
        if not (0 <= self.latency_ms <= MAX_LATENCY_MS and 0 <= self.chunk_delay_ms <= MAX_LATENCY_MS):
            raise ValueError(f"latency_ms and chunk_delay_ms are 0..{MAX_LATENCY_MS}")
        if not 100 <= self.status <= 599:
            raise ValueError("status is an HTTP status code")


class FakeProvider:
    def __init__(self, default: Behaviour | None = None):
        self.default = default or Behaviour()
        self._script: collections.deque[Behaviour] = collections.deque()
        #: model_name -> [behaviour, calls left (None: until unscripted)], in the order scripted
        self._by_model: dict[str, list[list]] = {}
        self._lock = threading.Lock()
        self._holds: dict[str, threading.Event] = {}
        self._held: collections.Counter[str] = collections.Counter()
        self._stopped = threading.Event()
        self.requests: list[dict] = []  # (path, model, stream) of each request, in arrival order
        self._dropped = 0  # requests no longer in `requests` (MAX_LOGGED)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> "FakeProvider":
        provider = self

        class Handler(_Handler):
            owner = provider

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-provider", daemon=True).start()
        atexit.register(self.stop)
        return self

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            for event in self._holds.values():
                event.set()
        server, self._server = self._server, None
        if server is not None:
            # shutdown() waits for serve_forever's select, which only looks at the flag every
            # poll interval (0.5 s): connecting wakes it at once.
            waiter = threading.Thread(target=server.shutdown, name="fake-provider-stop", daemon=True)
            waiter.start()
            while waiter.is_alive():
                with contextlib.suppress(OSError):
                    socket.create_connection(server.server_address, timeout=1).close()
                waiter.join(0.02)
            server.server_close()
        atexit.unregister(self.stop)

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the provider first"
        return self._server.server_address[1]

    @property
    def openai_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def anthropic_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base_for(self, model_name: str, shape: str = "openai") -> str:
        """The `api_base` of one proxy model: its name in the path lets `script(model=...)` find
        its requests whatever upstream model they name."""
        if not MODEL_NAME.fullmatch(model_name):
            raise ValueError(f"model names at the fake provider match {MODEL_NAME.pattern}")
        return f"http://127.0.0.1:{self.port}/m/{model_name}" + ("/v1" if shape == "openai" else "")

    def mark(self) -> int:
        """How many requests came so far: `since(mark)` gives the ones after it."""
        with self._lock:
            return self._dropped + len(self.requests)

    def since(self, mark: int) -> list[dict]:
        with self._lock:
            return self.requests[max(0, mark - self._dropped):]

    # -- scripting ------------------------------------------------------------------------

    def script(self, behaviour: Behaviour, times: int | None = 1, model: str | None = None) -> None:
        """The next `times` requests answer with `behaviour`; with `model`, only requests to
        `base_for(model)`, and `times=None` means every one until `unscript_models()`."""
        with self._lock:
            if model is None:
                if times is None:
                    raise ValueError("times=None goes with a model")
                self._script.extend([behaviour] * times)
            else:
                self._by_model.setdefault(model, []).append([behaviour, times])

    def unscript_models(self) -> None:
        with self._lock:
            self._by_model.clear()

    def _next(self, model: str | None = None) -> Behaviour:
        with self._lock:
            queue = self._by_model.get(model) if model is not None else None
            if queue:
                entry = queue[0]
                if entry[1] is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        queue.pop(0)
                return entry[0]
            return self._script.popleft() if self._script else self.default

    def _hold_event(self, name: str) -> threading.Event:
        with self._lock:
            event = self._holds.setdefault(name, threading.Event())
            if self._stopped.is_set():
                event.set()
            return event

    def held(self, name: str) -> int:
        """Requests waiting in hold `name` right now."""
        with self._lock:
            return self._held[name]

    def wait_held(self, name: str, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.held(name) < count:
            if time.monotonic() > deadline or self._stopped.is_set():
                return False
            time.sleep(0.01)
        return True

    def release(self, name: str) -> None:
        """Answer the requests held under `name` now and any that arrive later with that hold;
        `hold(name)` holds the ones after it again (a name reused by the next scenario)."""
        self._hold_event(name).set()

    def hold(self, name: str) -> None:
        """Requests with hold `name` wait again (after a `release(name)`)."""
        with self._lock:
            event = self._holds.get(name)
            if event is not None and event.is_set() and not self._stopped.is_set():
                self._holds[name] = threading.Event()

    def unscript(self, hold: str) -> int:
        """Withdraw the scripted behaviours that hold under `hold`; how many there were."""
        with self._lock:
            kept = [b for b in self._script if b.hold != hold]
            dropped = len(self._script) - len(kept)
            self._script = collections.deque(kept)
            return dropped

    def _wait(self, behaviour: Behaviour) -> None:
        if behaviour.latency_ms:
            self._stopped.wait(behaviour.latency_ms / 1000)
        if behaviour.hold is not None:
            event = self._hold_event(behaviour.hold)
            with self._lock:
                self._held[behaviour.hold] += 1
            try:
                event.wait(MAX_HOLD_S)
            finally:
                with self._lock:
                    self._held[behaviour.hold] -= 1


class _Handler(BaseHTTPRequestHandler):
    owner: FakeProvider
    protocol_version = "HTTP/1.1"
    # headers and body are two writes: with Nagle on, the body waits for the client's delayed
    # ACK (~40 ms per call on Linux)
    disable_nagle_algorithm = True

    def log_message(self, *args) -> None:  # quiet: the proxy's log says what it sent
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY:
            return self._json(413, {"error": {"message": "request too large"}})
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._json(400, {"error": {"message": "not JSON"}})
        path = self.path.split("?", 1)[0]
        routed = MODEL_PATH.match(path)
        model_name = routed.group(1) if routed else None
        anthropic = path.endswith("/messages")
        if not anthropic and not path.endswith("/chat/completions"):
            return self._json(404, {"error": {"message": f"no such endpoint {path}"}})
        provider = self.owner
        behaviour = provider._next(model_name)
        with provider._lock:
            provider.requests.append({"path": path, "model": body.get("model"), "model_name": model_name,
                                      "stream": bool(body.get("stream")), "status": behaviour.status})
            if len(provider.requests) > MAX_LOGGED:
                half = MAX_LOGGED // 2
                del provider.requests[:half]
                provider._dropped += half
        provider._wait(behaviour)
        if behaviour.status != 200:
            error = ({"type": "error", "error": {"type": "api_error", "message": f"harness fake status {behaviour.status}"}}
                     if anthropic else {"error": {"message": f"harness fake status {behaviour.status}",
                                                  "type": "server_error", "code": str(behaviour.status)}})
            return self._json(behaviour.status, error)
        model = str(body.get("model") or "fake")
        if anthropic:
            return self._anthropic_stream(model, behaviour) if body.get("stream") else self._json(200, _anthropic(model, behaviour))
        if body.get("stream"):
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return self._openai_stream(model, behaviour, usage)
        return self._json(200, _openai(model, behaviour))

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _events(self, events: list[bytes], cut_after: int | None, delay_ms: int = 0) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for number, event in enumerate(events):
            if cut_after is not None and number >= cut_after:
                return  # the connection closes mid-stream, no finish, no usage
            if number and delay_ms and self.owner._stopped.wait(delay_ms / 1000):
                return
            try:
                self.wfile.write(event)
                self.wfile.flush()
            except OSError:  # the proxy went away (its client cancelled)
                return

    def _openai_stream(self, model: str, b: Behaviour, usage: bool) -> None:
        ident, created = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time())

        def chunk(delta: dict, finish: str | None = None, **extra) -> bytes:
            choices = [] if "usage" in extra else [{"index": 0, "delta": delta, "finish_reason": finish}]
            payload = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                       "choices": choices, **extra}
            return f"data: {json.dumps(payload)}\n\n".encode()

        events = [chunk({"role": "assistant", "content": "ok"})]
        events += [chunk({"content": " ok"}) for _ in range(max(b.chunks - 1, 0))]
        events.append(chunk({}, "stop"))
        if usage:
            events.append(chunk({}, usage=_openai_usage(b)))
        events.append(b"data: [DONE]\n\n")
        self._events(events, b.cut_after_chunks, b.chunk_delay_ms)

    def _anthropic_stream(self, model: str, b: Behaviour) -> None:
        def event(kind: str, data: dict) -> bytes:
            return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

        message = {**_anthropic(model, b), "content": [], "stop_reason": None,
                   "usage": {"input_tokens": b.prompt_tokens, "output_tokens": 1}}
        events = [event("message_start", {"message": message}),
                  event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})]
        events += [event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "ok "}})
                   for _ in range(b.chunks)]
        events += [event("content_block_stop", {"index": 0}),
                   event("message_delta", {"delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                           "usage": {"output_tokens": b.completion_tokens}}),
                   event("message_stop", {})]
        self._events(events, b.cut_after_chunks, b.chunk_delay_ms)


def _openai_usage(b: Behaviour) -> dict:
    usage = {"prompt_tokens": b.prompt_tokens, "completion_tokens": b.completion_tokens,
             "total_tokens": b.prompt_tokens + b.completion_tokens}
    return usage if b.usage_cost is None else {**usage, "cost": b.usage_cost}


def _openai(model: str, b: Behaviour) -> dict:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": _openai_usage(b),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]}


def _anthropic(model: str, b: Behaviour) -> dict:
    return {"id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": b.prompt_tokens, "output_tokens": b.completion_tokens}}
