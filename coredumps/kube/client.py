"""The one module that talks to the Kubernetes API (through the official ``kubernetes`` client).

Objects come back as plain dicts, exactly as the API server sent them (camelCase keys), so that
the pure functions in ``pods.py`` and ``discovery.py`` can be tested on JSON. Every call carries
a request timeout. Library errors never leave this module; they become::

    TransientError
    └── KubeUnavailableError     connection refused or reset, timeouts, 429 and 5xx
    PermanentError
    └── KubeRejectedError        any other 4xx (``status`` holds the HTTP code)
        ├── KubeNotFoundError    404: the object (or the resource type) does not exist
        ├── KubeConflictError    409: already exists, or changed since it was read
        └── WatchExpired         410: the watch's resourceVersion is too old; list again
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import urllib3
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from coredumps.errors import ConfigError, CoredumpError, PermanentError, TransientError

KubeObject = dict[str, Any]
"""One API object as the server sent it (``metadata``, ``spec``, ``status`` ...)."""

ScalableKind = Literal["deployment", "statefulset"]
AnnotatedKind = Literal["pod", "deployment", "statefulset", "milvus"]

MILVUS_GROUP, MILVUS_VERSION, MILVUS_PLURAL = "milvus.io", "v1beta1", "milvuses"
HELM_RELEASE_TYPE = "helm.sh/release.v1"
_MERGE_PATCH = "application/merge-patch+json"


class KubeUnavailableError(TransientError):
    """The API server could not be reached, timed out or failed on its side."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeRejectedError(PermanentError):
    """The API server refused the request (4xx); repeating it unchanged will fail again."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeNotFoundError(KubeRejectedError):
    """404: the object or its resource type does not exist."""


class KubeConflictError(KubeRejectedError):
    """409: the object already exists or was changed since it was read."""


class WatchExpired(KubeRejectedError):
    """410: the resourceVersion is older than the server's history; list again, then watch."""


def _status_message(body: Any) -> str:
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if isinstance(body, str) and body.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            message = json.loads(body).get("message")
            if isinstance(message, str):
                return message
    return ""


def _http_error(status: int, detail: str, what: str) -> CoredumpError:
    """The project's error for an HTTP status (0: no response) the API server answered ``what`` with."""
    message = f"Kubernetes API {what} failed ({status or 'no response'}): {detail}."
    if status == 0 or status in (408, 429) or status >= 500:
        return KubeUnavailableError(f"{message} The API server is unavailable; retry later.", status)
    if status == 404:
        return KubeNotFoundError(message, status)
    if status == 409:
        return KubeConflictError(message, status)
    if status == 410:
        return WatchExpired(message, status)
    if status in (401, 403):
        return KubeRejectedError(
            f"{message} Check the agent's credentials and RBAC (ServiceAccount, Role and RoleBinding).", status
        )
    return KubeRejectedError(message, status)


def _error(exc: BaseException, what: str) -> CoredumpError:
    """The project's error for a library error raised while doing ``what``."""
    if isinstance(exc, ApiException):
        detail = _status_message(exc.body) or str(exc.reason or "no reason given")
        return _http_error(int(exc.status or 0), detail, what)
    return KubeUnavailableError(f"Kubernetes API {what} failed: {type(exc).__name__}: {exc}.")


_LIBRARY_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


class WatchStream:
    """The events of one watch request: iterate for ``(type, object)``; ``close()`` ends it from any thread.

    BOOKMARK events only advance ``resource_version``. An ERROR event raises: 410 as
    ``WatchExpired``, others as the matching error. The stream ends normally when the server
    closes it (its ``timeoutSeconds`` ran out).
    """

    def __init__(self, response: Any, resource_version: str, what: str) -> None:
        self._response = response
        self._what = what
        self._closed = threading.Event()
        self.resource_version = resource_version

    def __iter__(self) -> Iterator[tuple[str, KubeObject]]:
        try:
            for line in self._lines():
                event = json.loads(line)
                kind, obj = event.get("type", ""), event.get("object") or {}
                if kind == "ERROR":
                    detail = str(obj.get("message") or obj.get("reason") or "no reason given")
                    raise _http_error(int(obj.get("code") or 500), detail, self._what)
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if version:
                    self.resource_version = str(version)
                if kind != "BOOKMARK":
                    yield kind, obj
        except _LIBRARY_ERRORS as exc:
            if not self._closed.is_set():
                raise _error(exc, self._what) from exc
        except ValueError as exc:
            if not self._closed.is_set():
                raise KubeUnavailableError(f"Kubernetes API {self._what} sent a malformed event: {exc}.") from exc
        finally:
            self._release()

    def _lines(self) -> Iterator[bytes]:
        buffer = b""
        for chunk in self._response.stream(amt=None, decode_content=False):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.strip():
                    yield line
            if self._closed.is_set():
                return
        if buffer.strip() and not self._closed.is_set():
            yield buffer

    def close(self) -> None:
        """End the stream; a thread blocked reading it returns promptly."""
        if self._closed.is_set():
            return
        self._closed.set()
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _release(self) -> None:
        with contextlib.suppress(*_LIBRARY_ERRORS):
            self._response.close()
            self._response.release_conn()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
        self._release()


class KubeClient:
    """The handful of Kubernetes calls the project makes; objects are plain dicts."""

    def __init__(self, api_client: Any, *, request_timeout: float = 30.0, connect_timeout: float = 5.0) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self._core = k8s.CoreV1Api(api_client)
        self._apps = k8s.AppsV1Api(api_client)
        self._custom = k8s.CustomObjectsApi(api_client)

    @classmethod
    def for_url(cls, url: str, **kwargs: float) -> KubeClient:
        """A client for a server that needs no credentials (a local proxy, ``kubectl proxy``, a test server)."""
        return cls(k8s.ApiClient(k8s.Configuration(host=url, no_proxy="*")), **kwargs)

    def close(self) -> None:
        self.api_client.close()

    @property
    def _timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.request_timeout)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` with a timeout and the raw response; return the parsed JSON body (or text)."""
        try:
            response = fn(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
            data = response.data
            response.release_conn()
        except _LIBRARY_ERRORS as exc:
            raise _error(exc, what) from exc
        content_type = str(response.headers.get("Content-Type", ""))
        if "json" not in content_type:
            return data.decode("utf-8", errors="replace")
        try:
            return json.loads(data)
        except ValueError as exc:
            raise KubeUnavailableError(f"Kubernetes API {what} sent malformed JSON: {exc}.") from exc

    # ------------------------------------------------------------ pods

    def list_pods(self, namespace: str | None = None, *, label_selector: str = "",
                  field_selector: str = "") -> tuple[list[KubeObject], str]:
        """Pods of one namespace (or all), and the list's resourceVersion to watch from."""
        selectors = {"label_selector": label_selector or None, "field_selector": field_selector or None}
        if namespace is None:
            body = self._call("list pods", self._core.list_pod_for_all_namespaces, **selectors)
        else:
            body = self._call(f"list pods in {namespace}", self._core.list_namespaced_pod, namespace, **selectors)
        return list(body.get("items") or []), str((body.get("metadata") or {}).get("resourceVersion", ""))

    def get_pod(self, namespace: str, name: str) -> KubeObject:
        return dict(self._call(f"read pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace))

    def create_pod(self, namespace: str, body: KubeObject) -> KubeObject:
        return dict(self._call(f"create pod in {namespace}", self._core.create_namespaced_pod, namespace, body))

    def delete_pod(self, namespace: str, name: str) -> None:
        self._call(f"delete pod {namespace}/{name}", self._core.delete_namespaced_pod, name, namespace)

    def delete_service(self, namespace: str, name: str) -> None:
        self._call(f"delete service {namespace}/{name}", self._core.delete_namespaced_service, name, namespace)

    def list_services(self, namespace: str, label_selector: str = "") -> list[KubeObject]:
        body = self._call(f"list services in {namespace}", self._core.list_namespaced_service, namespace,
                          label_selector=label_selector or None)
        return list(body.get("items") or [])

    def watch_pods(self, namespace: str | None = None, *, field_selector: str = "", label_selector: str = "",
                   resource_version: str = "", timeout_seconds: int = 300) -> WatchStream:
        """Pod events after ``resource_version`` for at most ``timeout_seconds`` (then the stream ends)."""
        what = "watch pods" if namespace is None else f"watch pods in {namespace}"
        kwargs: dict[str, Any] = {
            "watch": True, "allow_watch_bookmarks": True, "timeout_seconds": int(timeout_seconds),
            "resource_version": resource_version or None, "field_selector": field_selector or None,
            "label_selector": label_selector or None, "_preload_content": False,
            "_request_timeout": (self.connect_timeout, timeout_seconds + self.request_timeout),
        }
        try:
            if namespace is None:
                response = self._core.list_pod_for_all_namespaces(**kwargs)
            else:
                response = self._core.list_namespaced_pod(namespace, **kwargs)
        except _LIBRARY_ERRORS as exc:
            raise _error(exc, what) from exc
        return WatchStream(response, resource_version, what)

    def read_pod_log(self, namespace: str, name: str, container: str, *, previous: bool = True,
                     tail_lines: int = 50, limit_bytes: int = 256 * 1024) -> str:
        """The last lines of a container's log; ``previous`` reads the run that ended last."""
        text = self._call(
            f"read the log of {namespace}/{name}/{container}", self._core.read_namespaced_pod_log, name, namespace,
            container=container, previous=previous, tail_lines=tail_lines, limit_bytes=limit_bytes,
        )
        return text if isinstance(text, str) else json.dumps(text)

    # ------------------------------------------------------------ Milvus custom resources

    def list_milvus_crs(self, namespace: str) -> list[KubeObject]:
        """Milvus resources of the operator; ``KubeNotFoundError`` when the CRD is not installed."""
        body = self._call(f"list Milvus resources in {namespace}", self._custom.list_namespaced_custom_object,
                          MILVUS_GROUP, MILVUS_VERSION, namespace, MILVUS_PLURAL)
        return list(body.get("items") or [])

    def get_milvus_cr(self, namespace: str, name: str) -> KubeObject:
        return dict(self._call(f"read Milvus {namespace}/{name}", self._custom.get_namespaced_custom_object,
                               MILVUS_GROUP, MILVUS_VERSION, namespace, MILVUS_PLURAL, name))

    def delete_milvus_cr(self, namespace: str, name: str) -> None:
        """Delete a Milvus resource; the operator then removes what it created."""
        self._call(f"delete Milvus {namespace}/{name}", self._custom.delete_namespaced_custom_object,
                   MILVUS_GROUP, MILVUS_VERSION, namespace, MILVUS_PLURAL, name)

    # ------------------------------------------------------------ workloads

    def list_statefulsets(self, namespace: str, label_selector: str = "") -> list[KubeObject]:
        body = self._call(f"list statefulsets in {namespace}", self._apps.list_namespaced_stateful_set,
                          namespace, label_selector=label_selector or None)
        return list(body.get("items") or [])

    def list_deployments(self, namespace: str, label_selector: str = "") -> list[KubeObject]:
        body = self._call(f"list deployments in {namespace}", self._apps.list_namespaced_deployment,
                          namespace, label_selector=label_selector or None)
        return list(body.get("items") or [])

    def read_scale(self, kind: ScalableKind, namespace: str, name: str) -> int:
        """The desired replica count of a deployment or statefulset."""
        fn = self._apps.read_namespaced_deployment_scale if kind == "deployment" \
            else self._apps.read_namespaced_stateful_set_scale
        body = self._call(f"read the scale of {kind} {namespace}/{name}", fn, name, namespace)
        return int((body.get("spec") or {}).get("replicas") or 0)

    def patch_scale(self, kind: ScalableKind, namespace: str, name: str, replicas: int) -> int:
        """Set the desired replica count; returns the count the server stored."""
        fn = self._apps.patch_namespaced_deployment_scale if kind == "deployment" \
            else self._apps.patch_namespaced_stateful_set_scale
        body = self._call(f"scale {kind} {namespace}/{name} to {replicas}", fn, name, namespace,
                          {"spec": {"replicas": replicas}}, _content_type=_MERGE_PATCH)
        return int((body.get("spec") or {}).get("replicas") or 0)

    def patch_annotations(self, kind: AnnotatedKind, namespace: str, name: str,
                          annotations: Mapping[str, str | None]) -> KubeObject:
        """Set annotations (``None`` removes one) with a merge patch; returns the updated object."""
        patch = {"metadata": {"annotations": dict(annotations)}}
        what = f"annotate {kind} {namespace}/{name}"
        if kind == "milvus":
            result = self._call(what, self._custom.patch_namespaced_custom_object, MILVUS_GROUP, MILVUS_VERSION,
                                namespace, MILVUS_PLURAL, name, patch, _content_type=_MERGE_PATCH)
        else:
            fn = {"pod": self._core.patch_namespaced_pod, "deployment": self._apps.patch_namespaced_deployment,
                  "statefulset": self._apps.patch_namespaced_stateful_set}[kind]
            result = self._call(what, fn, name, namespace, patch, _content_type=_MERGE_PATCH)
        return dict(result)

    # ------------------------------------------------------------ Helm

    def list_helm_release_secrets(self, namespace: str, release: str | None = None) -> list[KubeObject]:
        """Helm 3's release records (``sh.helm.release.v1.<release>.v<N>``) in a namespace."""
        selector = "owner=helm" + (f",name={release}" if release else "")
        body = self._call(f"list Helm releases in {namespace}", self._core.list_namespaced_secret, namespace,
                          label_selector=selector, field_selector=f"type={HELM_RELEASE_TYPE}")
        return list(body.get("items") or [])


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and Path(
        "/var/run/secrets/kubernetes.io/serviceaccount/token").exists()


def connect(kubeconfig: str | None = None, *, context: str | None = None, request_timeout: float = 30.0,
            connect_timeout: float = 5.0) -> KubeClient | None:
    """A client for the cluster this process runs in, else the kubeconfig's, else ``None``.

    Order: an explicit ``kubeconfig`` path; the in-cluster ServiceAccount; ``$KUBECONFIG``;
    ``~/.kube/config``. ``None`` means no cluster is configured, and callers run without one.
    A kubeconfig that exists but cannot be used raises ``ConfigError``.
    """
    configuration = k8s.Configuration()
    try:
        if kubeconfig is None and _in_cluster():
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            from_env = os.environ.get("KUBECONFIG", "")
            path = kubeconfig or from_env or str(Path.home() / ".kube" / "config")
            exists = any(Path(p).expanduser().is_file() for p in path.split(os.pathsep) if p)
            if not exists and kubeconfig is None and not from_env:
                return None
            if not exists:
                raise ConfigException(f"no kubeconfig file at {path}")
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=path, context=context, client_configuration=configuration, persist_config=False
            )
    except (ConfigException, yaml.YAMLError, OSError, ValueError, TypeError, KeyError) as exc:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "the in-cluster ServiceAccount or ~/.kube/config"
        raise ConfigError(f"cannot use the Kubernetes configuration from {where}: {exc}; "
                          "fix or remove it to run without Kubernetes.") from exc
    return KubeClient(k8s.ApiClient(configuration), request_timeout=request_timeout,
                      connect_timeout=connect_timeout)
