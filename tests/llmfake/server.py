"""A real chat-completions HTTP server on loopback, in the GLM or the OpenAI shape.

Every request is recorded (headers and JSON body). Replies come from a queue
of ``Reply`` values, then from ``default``: a good JSON answer, a fenced one,
malformed JSON, a slow answer, 429 with Retry-After, 500, 401, or any body.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

GOOD_ANSWER = {
    "summary": "Null pointer dereference in the segment loader",
    "rootCause": "SegmentLoader::Load reads a segment that was released by a concurrent flush.",
    "impact": "The query node restarts and queries on the collection fail until it recovers.",
    "recommendations": ["Hold a reference to the segment while loading", "Add a null check"],
    "confidence": 0.82,
    "codeSuggestions": [
        {"file": "internal/core/src/segcore/SegmentLoader.cpp", "function": "Load", "lineNumber": 120,
         "issue": "segment may be null", "suggestion": "Check the pointer before use", "priority": "high"}
    ],
    "relatedIssues": ["milvus-io/milvus#12345"],
}


@dataclass
class Reply:
    """One scripted reply; ``content`` is the answer text for a 200 chat completion."""

    status: int = 200
    content: str | None = None
    body: bytes | dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] | None = (1200, 300)
    finish_reason: str = "stop"


def good(answer: dict[str, Any] | None = None, usage: tuple[int, int] | None = (1200, 300)) -> Reply:
    return Reply(content=json.dumps(answer or GOOD_ANSWER), usage=usage)


def fenced(answer: dict[str, Any] | None = None) -> Reply:
    text = json.dumps(answer or GOOD_ANSWER, indent=2)
    return Reply(content=f"Here is my analysis.\n\n```json\n{text}\n```\n\nLet me know if you need more.")


def malformed(text: str = '{"summary": "cut off", "rootCause": ') -> Reply:
    return Reply(content=text)


def slow(seconds: float) -> Reply:
    return Reply(content=json.dumps(GOOD_ANSWER), delay=seconds)


def rate_limited(retry_after: str | None = "7", code: str = "rate_limit_exceeded") -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=429, headers=headers, body={"error": {"code": code, "message": "Too many requests"}})


def server_error(status: int = 500) -> Reply:
    return Reply(status=status, body={"error": {"code": "internal", "message": "upstream failure"}})


def unauthorized() -> Reply:
    return Reply(status=401, body={"error": {"code": "invalid_api_key", "message": "Incorrect API key provided"}})


def error(status: int, code: str = "", message: str = "") -> Reply:
    return Reply(status=status, body={"error": {"code": code, "message": message}})


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes

    @property
    def prompt(self) -> str:
        """All message contents of the request, joined."""
        messages = self.body.get("messages", []) if isinstance(self.body, dict) else []
        return "\n".join(str(m.get("content", "")) for m in messages)


class FakeLLM:
    """``with FakeLLM(shape="glm") as llm:`` serves at ``llm.url`` until the block ends."""

    def __init__(self, shape: str = "openai", path: str = "/v1/chat/completions") -> None:
        if shape not in {"openai", "glm"}:
            raise ValueError(f"unknown shape {shape!r}")
        self.shape = shape
        self.path = path
        self.default: Reply = good()
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._ready = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._serve, name="fake-llm", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def base_url(self) -> str:
        """The URL without ``/chat/completions`` (for paths ending in ``/v1``)."""
        return self.url.removesuffix("/chat/completions")

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def start(self) -> FakeLLM:
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the fake LLM server did not start")
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _serve(self) -> None:
        self._ready.set()
        self._server.serve_forever(poll_interval=0.05)

    def _next(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _record(self, handler: BaseHTTPRequestHandler, raw: bytes) -> Recorded:
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        entry = Recorded(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, raw)
        with self._lock:
            self.requests.append(entry)
        return entry

    def _completion(self, reply: Reply, request: Recorded) -> dict[str, Any]:
        model = request.body.get("model", "unknown") if isinstance(request.body, dict) else "unknown"
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        data: dict[str, Any] = {"id": f"cmpl-{len(self.requests)}", "created": int(time.time()), "model": model}
        if self.shape == "glm":
            message["reasoning_content"] = "Looking at the frames first."
            data["request_id"] = data["id"]
        else:
            data["object"] = "chat.completion"
        data["choices"] = [{"index": 0, "message": message, "finish_reason": reply.finish_reason}]
        if reply.usage is not None:
            prompt, completion = reply.usage
            data["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
        return data

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = fake._record(self, self.rfile.read(length))
                reply = fake._next()
                if reply.delay and fake._release.wait(reply.delay):
                    return
                if reply.body is not None:
                    payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                else:
                    payload = json.dumps(fake._completion(reply, request)).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler
