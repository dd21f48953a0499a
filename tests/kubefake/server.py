"""A Kubernetes API server fake: real HTTP on loopback, objects in memory, real watch semantics.

Served (JSON only; the official ``kubernetes`` client talks to it unchanged)::

    /api/v1                 pods (+ /log, /status), secrets, services, serviceaccounts, events,
                            namespaces (each new one gets its ``default`` ServiceAccount)
    /apis/apps/v1           deployments, statefulsets (+ /scale, /status)
    /apis/milvus.io/v1beta1 milvuses (a namespaced custom resource)
    /version

What it shares with the real server:

- one global resourceVersion counter; every write bumps it; a list carries it in ``metadata``;
  versions from before the server started count as compacted away;
- label selectors (``=``, ``==``, ``!=``, ``in (..)``, ``notin (..)``, ``key``, ``!key``) and field
  selectors (``metadata.name``, ``metadata.namespace``, ``spec.nodeName``, ``status.phase`` ...);
- create answers 201 with uid, creationTimestamp and resourceVersion, 409 AlreadyExists for a
  duplicate, 404 NotFound when the namespace is missing; errors are ``Status`` objects;
- replace with a stale resourceVersion is a 409 Conflict; the main resource ignores status changes;
- PATCH: JSON patch, merge patch, and strategic merge patch applied as a merge patch (custom
  resources refuse strategic merge with 415, as the real server does);
- watch (``watch=true``) streams chunked newline-delimited events from a resourceVersion, turns
  objects entering or leaving the selector into ADDED/DELETED, and answers a resourceVersion older
  than the kept history (``history`` events) with an ``ERROR`` event holding a 410 Expired Status.

Test hooks (Python, not HTTP): ``seed``, ``get``, ``update``, ``set_pod_status``,
``restart_container``, ``set_log``, ``delete``, ``fail_next``, ``requests``, ``compact`` and
``stop``/``start`` on the same port (objects survive, as they would in etcd).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HOST = "127.0.0.1"
SEED_DIR = Path(__file__).resolve().parent / "seed"
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

Obj = dict[str, Any]
Match = Callable[[Obj], bool]


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def load_seed(*names: str) -> list[Obj]:
    """Objects of ``seed/<name>.json`` (a ``List`` or one object); every file when no name is given."""
    paths = [SEED_DIR / f"{name}.json" for name in names] or sorted(SEED_DIR.glob("*.json"))
    objects: list[Obj] = []
    for path in paths:
        data = json.loads(path.read_text())
        objects.extend(data["items"] if data.get("kind") == "List" else [data])
    return objects


# ---------------------------------------------------------------- resources

_META_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    fields: tuple[str, ...] = ()
    custom: bool = False
    scalable: bool = False
    has_status: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """``pods``, ``deployments.apps``: the name the real server uses in its messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


RESOURCES = (
    Resource(
        "", "v1", "pods", "Pod",
        fields=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    ),
    Resource("", "v1", "secrets", "Secret", fields=("type",), has_status=False),
    Resource("", "v1", "services", "Service"),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", has_status=False),
    Resource(
        "", "v1", "events", "Event", has_status=False,
        fields=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                "involvedObject.uid", "reason", "type", "source", "reportingComponent"),
    ),
    Resource("", "v1", "namespaces", "Namespace", namespaced=False, fields=("status.phase",)),
    Resource("apps", "v1", "deployments", "Deployment", scalable=True),
    Resource("apps", "v1", "statefulsets", "StatefulSet", scalable=True),
    Resource("milvus.io", "v1beta1", "milvuses", "Milvus", custom=True),
)
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_BY_PLURAL = {r.plural: r for r in RESOURCES}
NAMESPACES = _BY_PLURAL["namespaces"]
SERVICE_ACCOUNTS = _BY_PLURAL["serviceaccounts"]


class ApiError(Exception):
    """An error answered as a ``Status`` object, shaped like the real server's."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        status: Obj = {
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": self.message, "reason": self.reason, "code": self.code,
        }
        if self.details is not None:
            status["details"] = self.details
        return status


def _details(res: Resource, name: str) -> Obj:
    details: Obj = {"name": name, "kind": res.plural}
    if res.group:
        details["group"] = res.group
    return details


def not_found(res: Resource, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found', _details(res, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


_FAILURE_REASONS = {
    401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict", 429: "TooManyRequests",
    500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout",
}


# ---------------------------------------------------------------- selectors

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for char in text:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_label_selector(text: str) -> Callable[[dict[str, str]], bool]:
    """The API server's label selector grammar, as a predicate over a label dict."""
    checks: list[Callable[[dict[str, str]], bool]] = []
    for part in _split_top_level(text):
        if m := _EQUALITY.match(part):
            key, op, value = m.groups()
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: k in labels and labels[k] == v)
        elif m := _SET.match(part):
            key, op, raw = m.groups()
            values = {v.strip() for v in raw.split(",") if v.strip()}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EXISTS.match(part):
            negate, key = m.groups()
            checks.append(lambda labels, k=key, n=bool(negate): (k in labels) != n)
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj: Obj, path: str) -> str:
    value: Any = obj
    for step in path.split("."):
        value = value.get(step) if isinstance(value, dict) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_field_selector(text: str, res: Resource) -> Match:
    checks: list[Match] = []
    allowed = set(_META_FIELDS) | set(res.fields)
    for part in _split_top_level(text):
        m = re.match(r"^([A-Za-z.]+)\s*(==|=|!=)\s*(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.groups()
        if field not in allowed:
            raise bad_request(f'field label not supported: {field}')
        if op == "!=":
            checks.append(lambda obj, f=field, v=value: _field_value(obj, f) != v)
        else:
            checks.append(lambda obj, f=field, v=value: _field_value(obj, f) == v)
    return lambda obj: all(check(obj) for check in checks)


# ---------------------------------------------------------------- patches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer: {path}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def json_patch(document: Obj, operations: Any) -> Obj:
    """RFC 6902 JSON patch: add, remove, replace, test."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(document)
    for op in operations:
        tokens = _pointer(op.get("path", ""))
        if not tokens:
            raise ApiError(422, "Invalid", "patching the document root is not supported")
        parent: Any = doc
        for token in tokens[:-1]:
            parent = parent[int(token)] if isinstance(parent, list) else parent.get(token)
            if parent is None:
                raise ApiError(422, "Invalid", f"path {op['path']} does not exist")
        last, kind = tokens[-1], op.get("op")
        if kind == "test":
            current = parent[int(last)] if isinstance(parent, list) else parent.get(last)
            if current != op.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        elif kind in ("add", "replace"):
            if isinstance(parent, list):
                if last == "-":
                    parent.append(op["value"])
                elif kind == "add":
                    parent.insert(int(last), op["value"])
                else:
                    parent[int(last)] = op["value"]
            else:
                if kind == "replace" and last not in parent:
                    raise ApiError(422, "Invalid", f"replace of a missing path {op['path']}")
                parent[last] = op["value"]
        elif kind == "remove":
            try:
                del parent[int(last) if isinstance(parent, list) else last]
            except (KeyError, IndexError) as exc:
                raise ApiError(422, "Invalid", f"remove of a missing path {op['path']}") from exc
        else:
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation {kind!r}")
    return doc


# ---------------------------------------------------------------- server


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str = ""


@dataclass
class _Event:
    rv: int
    resource: Resource
    type: str
    obj: Obj
    old: Obj | None


@dataclass
class _Failure:
    remaining: int
    status: int
    prefix: str | None


class _Connections:
    """Sockets the server has open, so that ``stop()`` can cut them like a crashed server would."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()

    def add(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.add(conn)

    def discard(self, conn: socket.socket) -> None:
        with self._lock:
            self._open.discard(conn)

    def close_all(self) -> None:
        with self._lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class FakeKubeServer:
    """The fake API server on ``http://127.0.0.1:<port>``; ``stop()`` and ``start()`` may alternate."""

    def __init__(self, port: int | None = None, *, history: int = 1000, watch_timeout: int = 60) -> None:
        self.port = port or free_port()
        self.history_limit = history
        self.watch_timeout = watch_timeout
        self._cond = threading.Condition()
        self._objects: dict[tuple[Resource, str, str], Obj] = {}
        self._history: deque[_Event] = deque()
        self._rv = 1000
        self._expired_before = 0
        self._generation = 0
        self._logs: dict[tuple[str, str, str, bool], str] = {}
        self._failures: list[_Failure] = []
        self._requests: list[RequestRecord] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections = _Connections()
        for name in DEFAULT_NAMESPACES:
            self.seed([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name},
                        "status": {"phase": "Active"}}])
            self.seed([_default_service_account(name)])
        self._expired_before = self._rv

    # -------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeKubeServer:
        """Listen on the port; requests are accepted as soon as this returns."""
        if self._server is not None:
            return self
        fake, connections = self, self._connections

        class Handler(_Handler):
            server_fake = fake

            def setup(self) -> None:
                super().setup()
                connections.add(self.connection)

            def finish(self) -> None:
                try:
                    super().finish()
                finally:
                    connections.discard(self.connection)

        server = ThreadingHTTPServer((HOST, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=f"kubefake:{self.port}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection (watches included)."""
        server, self._server = self._server, None
        if server is None:
            return
        with self._cond:
            self._generation += 1
            self._cond.notify_all()
        server.shutdown()
        server.server_close()
        self._connections.close_all()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeKubeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this server: plain HTTP, no auth, no proxy."""
        from kubernetes import client

        configuration = client.Configuration(host=self.url, no_proxy="*")
        return client.ApiClient(configuration)

    def write_kubeconfig(self, path: Path, namespace: str = "default") -> Path:
        """A kubeconfig whose current context points at this server."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "kubefake",
            "clusters": [{"name": "kubefake", "cluster": {"server": self.url}}],
            "users": [{"name": "kubefake", "user": {}}],
            "contexts": [{"name": "kubefake", "context": {"cluster": "kubefake", "user": "kubefake",
                                                           "namespace": namespace}}],
        }
        path.write_text(json.dumps(config, indent=2))
        return path

    # -------------------------------------------------- test hooks

    @property
    def resource_version(self) -> int:
        with self._cond:
            return self._rv

    @property
    def requests(self) -> list[RequestRecord]:
        with self._cond:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._cond:
            self._requests.clear()

    def seed(self, objects: Iterable[Obj]) -> None:
        """Store objects as given (uid and timestamps kept when present), each an ADDED event."""
        with self._cond:
            for given in objects:
                res = _BY_KIND.get((given.get("apiVersion", ""), given.get("kind", "")))
                if res is None:
                    raise ValueError(f"the fake does not serve {given.get('apiVersion')} {given.get('kind')}")
                obj = copy.deepcopy(given)
                meta = obj.setdefault("metadata", {})
                if res.namespaced:
                    meta.setdefault("namespace", "default")
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", now_rfc3339())
                old = self._objects.get(self._key(res, meta.get("namespace"), meta["name"]))
                self._store(res, obj, "MODIFIED" if old else "ADDED", old)

    def get(self, plural: str, namespace: str | None, name: str) -> Obj | None:
        res = _BY_PLURAL[plural]
        with self._cond:
            obj = self._objects.get(self._key(res, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def update(self, plural: str, namespace: str | None, name: str, change: Obj | Callable[[Obj], None]) -> Obj:
        """Merge-patch the object with ``change`` or let ``change`` edit it; a MODIFIED event."""
        res = _BY_PLURAL[plural]
        with self._cond:
            old = self._require(res, namespace, name)
            if callable(change):
                new = copy.deepcopy(old)
                change(new)
            else:
                new = merge_patch(old, change)
            return copy.deepcopy(self._store(res, new, "MODIFIED", old))

    def set_pod_status(self, namespace: str, name: str, status: Obj) -> Obj:
        """Merge ``status`` into the pod's status, as the kubelet's status updates do."""
        return self.update("pods", namespace, name, {"status": status})

    def restart_container(
        self, namespace: str, pod: str, container: str, *, exit_code: int = 139, reason: str = "Error",
        signal: int | None = None, finished_at: str | None = None, log: str | None = None,
    ) -> Obj:
        """What the kubelet reports after a container died and was restarted into CrashLoopBackOff."""
        finished = finished_at or now_rfc3339()

        def change(obj: Obj) -> None:
            statuses = obj.setdefault("status", {}).setdefault("containerStatuses", [])
            status = next((s for s in statuses if s.get("name") == container), None)
            if status is None:
                status = {"name": container, "restartCount": 0, "ready": False, "image": "", "imageID": ""}
                statuses.append(status)
            started = (status.get("state", {}).get("running") or {}).get("startedAt") or finished
            terminated: Obj = {"exitCode": exit_code, "reason": reason, "startedAt": started,
                               "finishedAt": finished, "containerID": f"containerd://{secrets.token_hex(32)}"}
            if signal is not None:
                terminated["signal"] = signal
            status["restartCount"] = int(status.get("restartCount", 0)) + 1
            status["lastState"] = {"terminated": terminated}
            status["ready"] = False
            status["started"] = False
            status["state"] = {"waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off 10s restarting failed container={container} "
                           f"pod={pod}_{namespace}({obj['metadata'].get('uid', '')})",
            }}

        with self._cond:
            if log is not None:
                self._logs[(namespace, pod, container, True)] = log
            return self.update("pods", namespace, pod, change)

    def set_log(self, namespace: str, pod: str, container: str, text: str, *, previous: bool = False) -> None:
        with self._cond:
            self._logs[(namespace, pod, container, previous)] = text

    def delete(self, plural: str, namespace: str | None, name: str) -> Obj:
        res = _BY_PLURAL[plural]
        with self._cond:
            return copy.deepcopy(self._remove(res, namespace, name))

    def fail_next(self, n: int = 1, status: int = 500, path_prefix: str | None = None) -> None:
        """Answer the next ``n`` requests whose path starts with ``path_prefix`` with ``status``."""
        with self._cond:
            self._failures.append(_Failure(n, status, path_prefix))

    def clear_failures(self) -> None:
        """Forget the failures ``fail_next`` still has to give."""
        with self._cond:
            self._failures.clear()

    def compact(self) -> None:
        """Forget the watch history: every resourceVersion issued so far is expired, and open
        watches end with a 410 ERROR event, as when an etcd compaction overtakes a watcher."""
        with self._cond:
            self._rv += 1
            self._expired_before = self._rv
            self._history.clear()
            self._cond.notify_all()

    # -------------------------------------------------- store (callers hold the lock)

    @staticmethod
    def _key(res: Resource, namespace: str | None, name: str) -> tuple[Resource, str, str]:
        return (res, (namespace or "") if res.namespaced else "", name)

    def _require(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get(self._key(res, namespace, name))
        if obj is None:
            raise not_found(res, name)
        return obj

    def _store(self, res: Resource, obj: Obj, kind: str, old: Obj | None = None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._objects[self._key(res, obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        self._record(res, kind, obj, old)
        return obj

    def _remove(self, res: Resource, namespace: str | None, name: str) -> Obj:
        obj = self._objects.pop(self._key(res, namespace, name), None)
        if obj is None:
            raise not_found(res, name)
        if res is NAMESPACES:
            for key in [k for k in self._objects if k[0].namespaced and k[1] == name]:
                self._remove(key[0], key[1], key[2])
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self._rv)
        self._record(res, "DELETED", obj, None)
        return obj

    def _record(self, res: Resource, kind: str, obj: Obj, old: Obj | None) -> None:
        self._history.append(_Event(self._rv, res, kind, copy.deepcopy(obj), copy.deepcopy(old)))
        while len(self._history) > self.history_limit:
            self._expired_before = max(self._expired_before, self._history.popleft().rv)
        self._cond.notify_all()

    # -------------------------------------------------- HTTP

    def handle(self, h: _Handler) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        content_type = (h.headers.get("Content-Type") or "").split(";")[0].strip()
        with self._cond:
            self._requests.append(RequestRecord(h.command, url.path, query, content_type))
            failure = next((f for f in self._failures
                            if f.remaining > 0 and (f.prefix is None or url.path.startswith(f.prefix))), None)
            if failure is not None:
                failure.remaining -= 1
        try:
            if failure is not None:
                reason = _FAILURE_REASONS.get(failure.status, "Unknown")
                raise ApiError(failure.status, reason, f"injected failure ({reason})")
            if url.path == "/version":
                h.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-kubefake"})
                return
            res, namespace, name, sub = _route(url.path)
            if name is None:
                self._collection(h, res, namespace, query, body)
            else:
                status, payload = self._item(h.command, res, namespace, name, sub, query, body, content_type)
                if isinstance(payload, str):
                    h.send_text(status, payload)
                else:
                    h.send_json(status, payload)
        except ApiError as err:
            h.send_json(err.code, err.status())
        except (ValueError, KeyError, TypeError) as exc:
            h.send_json(400, bad_request(f"the request could not be decoded: {exc}").status())

    def _collection(self, h: _Handler, res: Resource, namespace: str | None, query: dict[str, str],
                    body: bytes) -> None:
        if h.command == "GET":
            if query.get("watch") in ("true", "1"):
                self._watch(h, res, namespace, query)
            else:
                h.send_json(200, self._list(res, namespace, query))
        elif h.command == "POST":
            if res.namespaced and namespace is None:
                raise ApiError(405, "MethodNotAllowed", "create needs a namespace in the path")
            h.send_json(201, self._create(res, namespace, json.loads(body or b"null")))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{h.command} is not supported on a collection")

    def _item(self, method: str, res: Resource, namespace: str | None, name: str, sub: str | None,
              query: dict[str, str], body: bytes, content_type: str) -> tuple[int, Obj | str]:
        if sub == "log" and res.plural == "pods" and method == "GET":
            return 200, self._log(namespace or "", name, query)
        if sub not in (None, "status", "scale") or (sub == "scale" and not res.scalable):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        with self._cond:
            current = self._require(res, namespace, name)
            if method == "GET":
                return 200, _scale(current) if sub == "scale" else copy.deepcopy(current)
            if method == "DELETE":
                return 200, self._remove(res, namespace, name)
            if method not in ("PUT", "PATCH"):
                raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")
            payload = json.loads(body or b"null")
            if sub == "scale":
                return 200, self._write_scale(res, current, method, payload, content_type)
            if method == "PUT":
                new = payload
                if not isinstance(new, dict):
                    raise bad_request("the body must be an object")
                sent_rv = (new.get("metadata") or {}).get("resourceVersion")
                if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
                    raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": '
                                   "the object has been modified; please apply your changes to the latest "
                                   "version and try again", _details(res, name))
            else:
                new = _apply_patch(res, current, payload, content_type)
            return 200, copy.deepcopy(self._replace(res, current, new, sub))

    def _replace(self, res: Resource, current: Obj, new: Obj, sub: str | None) -> Obj:
        meta = new.setdefault("metadata", {})
        if meta.get("name", current["metadata"]["name"]) != current["metadata"]["name"]:
            raise bad_request("the name of the object does not match the name on the URL")
        if sub == "status":
            new = {**copy.deepcopy(current), "status": new.get("status")}
        elif res.has_status:
            new["status"] = copy.deepcopy(current.get("status"))
            if new["status"] is None:
                new.pop("status")
        for field in ("uid", "creationTimestamp", "namespace", "name", "generation"):
            if field in current["metadata"]:
                new["metadata"][field] = current["metadata"][field]
        new["apiVersion"], new["kind"] = res.api_version, res.kind
        if res.plural != "pods" and new.get("spec") != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return self._store(res, new, "MODIFIED", current)

    def _write_scale(self, res: Resource, current: Obj, method: str, payload: Any, content_type: str) -> Obj:
        scale = _scale(current)
        new_scale = payload if method == "PUT" else _apply_patch(res, scale, payload, content_type)
        replicas = (new_scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise ApiError(422, "Invalid", f"spec.replicas: Invalid value: {replicas!r}: must be a non-negative integer")
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        if new["spec"] != current.get("spec"):
            new["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        return _scale(self._store(res, new, "MODIFIED", current))

    def _create(self, res: Resource, namespace: str | None, obj: Any) -> Obj:
        if not isinstance(obj, dict):
            raise bad_request("the body must be an object")
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", f"{res.kind}.{res.group or 'core'} is invalid: "
                               "metadata.name: Required value: name or generateName is required")
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        with self._cond:
            if res.namespaced and self._key(NAMESPACES, None, namespace or "") not in self._objects:
                raise not_found(NAMESPACES, namespace or "")
            if self._key(res, namespace, meta["name"]) in self._objects:
                raise ApiError(409, "AlreadyExists", f'{res.qualified} "{meta["name"]}" already exists',
                               _details(res, meta["name"]))
            for field in ("resourceVersion", "deletionTimestamp"):
                meta.pop(field, None)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now_rfc3339()
            if res.plural != "pods":
                meta["generation"] = 1
            created = copy.deepcopy(self._store(res, obj, "ADDED"))
            if res is NAMESPACES:
                self.seed([_default_service_account(meta["name"])])
            return created

    def _matcher(self, res: Resource, namespace: str | None, query: dict[str, str]) -> Match:
        labels = parse_label_selector(query.get("labelSelector", ""))
        fields = parse_field_selector(query.get("fieldSelector", ""), res)

        def match(obj: Obj) -> bool:
            meta = obj.get("metadata", {})
            if namespace is not None and meta.get("namespace") != namespace:
                return False
            return labels(meta.get("labels") or {}) and fields(obj)

        return match

    def _list(self, res: Resource, namespace: str | None, query: dict[str, str]) -> Obj:
        match = self._matcher(res, namespace, query)
        with self._cond:
            items = [copy.deepcopy(obj) for key, obj in sorted(self._objects.items(), key=lambda kv: kv[0][1:])
                     if key[0] is res and match(obj)]
            rv = self._rv
        if not res.custom:
            for item in items:
                item.pop("apiVersion", None)
                item.pop("kind", None)
        return {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                "metadata": {"resourceVersion": str(rv)}, "items": items}

    def _log(self, namespace: str, name: str, query: dict[str, str]) -> str:
        with self._cond:
            pod = self._require(_BY_PLURAL["pods"], namespace, name)
            spec = pod.get("spec") or {}
            containers = [c["name"] for c in spec.get("containers") or []]
            every = containers + [c["name"] for c in spec.get("initContainers") or []]
            container = query.get("container") or ""
            if not container:
                if len(containers) != 1:
                    raise bad_request(f"a container name must be specified for pod {name}, "
                                      f"choose one of: [{' '.join(containers)}]")
                container = containers[0]
            if container not in every:
                raise bad_request(f"container {container} is not valid for pod {name}")
            previous = query.get("previous") in ("true", "1")
            text = self._logs.get((namespace, name, container, previous))
        if text is None:
            if previous:
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            text = ""
        if "tailLines" in query:
            tail = int(query["tailLines"])
            text = "".join(text.splitlines(keepends=True)[-tail:]) if tail > 0 else ""
        if "limitBytes" in query:
            text = text.encode()[: int(query["limitBytes"])].decode(errors="ignore")
        return text

    def _watch(self, h: _Handler, res: Resource, namespace: str | None, query: dict[str, str]) -> None:
        match = self._matcher(res, namespace, query)
        timeout = int(query.get("timeoutSeconds") or self.watch_timeout)
        since = query.get("resourceVersion") or ""
        if since not in ("", "0") and not since.isdigit():
            raise bad_request(f"invalid resource version: {since}")
        with self._cond:
            generation = self._generation
            initial: list[tuple[str, Obj]] = []
            if since in ("", "0"):
                last = self._rv
                objects = sorted((o for k, o in self._objects.items() if k[0] is res and match(o)),
                                 key=lambda o: int(o["metadata"]["resourceVersion"]))
                initial = [("ADDED", copy.deepcopy(o)) for o in objects]
            else:
                last = int(since)
            expired = self._expired_message(last)
        h.start_stream()
        try:
            if expired:
                h.send_event(_expired_event(expired))
                return
            for event in initial:
                h.send_event(_event(*event))
            deadline = time.monotonic() + timeout
            while True:
                with self._cond:
                    while generation == self._generation and self._rv <= last and last >= self._expired_before:
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._cond.wait(remaining)
                    if generation != self._generation:
                        h.abort_stream()
                        return
                    expired = self._expired_message(last)
                    batch = [e for e in self._history if e.rv > last and e.resource is res]
                    done = self._rv <= last
                    last = self._rv
                if expired:
                    h.send_event(_expired_event(expired))
                    return
                if done:
                    return
                for event in batch:
                    translated = _translate(event, match)
                    if translated is not None:
                        h.send_event(_event(*translated))
        except OSError:
            h.abort_stream()
        finally:
            h.end_stream()

    def _expired_message(self, since: int) -> str:
        if since < self._expired_before:
            return f"too old resource version: {since} ({self._expired_before})"
        return ""


def _default_service_account(namespace: str) -> Obj:
    """What the ServiceAccount controller creates in every namespace."""
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": namespace}}


def _route(path: str) -> tuple[Resource, str | None, str | None, str | None]:
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in _BY_PATH:
        namespace, rest = rest[1], rest[2:]
    res = _BY_PATH.get((group, version, rest[0])) if rest else None
    if res is None or len(rest) > 3 or (namespace is not None and not res.namespaced) \
            or (namespace is None and res.namespaced and len(rest) > 1):
        raise ApiError(404, "NotFound", "the server could not find the requested resource")
    return res, namespace, rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None


def _apply_patch(res: Resource, current: Obj, payload: Any, content_type: str) -> Obj:
    if content_type == "application/json-patch+json":
        return json_patch(current, payload)
    if content_type == "application/merge-patch+json" or (
            content_type == "application/strategic-merge-patch+json" and not res.custom):
        if not isinstance(payload, dict):
            raise bad_request("a merge patch must be an object")
        return merge_patch(current, payload)
    raise ApiError(415, "UnsupportedMediaType", f'the body of the request was in an unknown format - accepted media '
                   f'types include: application/json-patch+json, application/merge-patch+json'
                   f'{"" if res.custom else ", application/strategic-merge-patch+json"}')


def _scale(obj: Obj) -> Obj:
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))},
    }


def _translate(event: _Event, match: Match) -> tuple[str, Obj] | None:
    """The event a selective watcher sees: entering the selector is ADDED, leaving it DELETED."""
    if event.type == "DELETED":
        return ("DELETED", event.obj) if match(event.obj) else None
    now = match(event.obj)
    before = event.old is not None and match(event.old)
    if event.type == "ADDED" or not before:
        return ("ADDED", event.obj) if now else None
    if now:
        return ("MODIFIED", event.obj)
    gone = copy.deepcopy(event.old)
    assert gone is not None
    gone["metadata"]["resourceVersion"] = str(event.rv)
    return ("DELETED", gone)


def _event(kind: str, obj: Obj) -> Obj:
    return {"type": kind, "object": obj}


def _expired_event(message: str) -> Obj:
    return _event("ERROR", ApiError(410, "Expired", message).status())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "kubefake"
    server_fake: FakeKubeServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        self.server_fake.handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def send_json(self, status: int, payload: Obj) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def send_text(self, status: int, text: str) -> None:
        self._send(status, text.encode(), "text/plain")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._streaming = True

    def abort_stream(self) -> None:
        """End the response without its final chunk and drop the connection."""
        self._streaming = False
        self.close_connection = True

    def send_event(self, event: Obj) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        if getattr(self, "_streaming", False):
            self._streaming = False
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")

