"""Kubernetes: the API client, Milvus instance discovery, pod restarts and label selectors.

Only ``client.py`` imports the ``kubernetes`` library; the rest works on the plain dicts it returns.
"""

from coredumps.kube.client import (
    KubeClient,
    KubeConflictError,
    KubeNotFoundError,
    KubeObject,
    KubeRejectedError,
    KubeUnavailableError,
    WatchExpired,
    WatchStream,
    connect,
)
from coredumps.kube.discovery import Instance, discover_instances, group_instances
from coredumps.kube.pods import (
    PodInfo,
    PodWatcher,
    Restart,
    instance_of,
    is_panic,
    last_restarts,
    pod_info,
    restarts,
)

__all__ = [
    "Instance",
    "KubeClient",
    "KubeConflictError",
    "KubeNotFoundError",
    "KubeObject",
    "KubeRejectedError",
    "KubeUnavailableError",
    "PodInfo",
    "PodWatcher",
    "Restart",
    "WatchExpired",
    "WatchStream",
    "connect",
    "discover_instances",
    "group_instances",
    "instance_of",
    "is_panic",
    "last_restarts",
    "pod_info",
    "restarts",
]
