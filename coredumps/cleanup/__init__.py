"""Cleanup of crash-looping Milvus instances, as plain functions (the flows live in ``flows/cleanup.py``).

    incidents   restarts per instance within cleaner.restartTimeWindow; incidents and their keys
    decisions   whom to schedule, and when a due cleanup must stand down
    records     cleanup_events rows: one decision and one outcome per incident, at most
    live        the instance as the Kubernetes API shows it now
    scaling     scale-to-zero and restore, one API call per function
    helm        helm uninstall under a timeout
    webhook     the alerting webhook
    report      markdown artifacts and the alert message
    status      what ``coredump-agent cleanup status`` lists
"""

from coredumps.cleanup.decisions import (
    Proposal,
    action_refusal,
    duration,
    namespace_refusal,
    over_limit,
    plan,
    propose,
    scale_order,
    stand_down,
)
from coredumps.cleanup.errors import (
    HelmFailedError,
    HelmMissingError,
    NothingToRestoreError,
    WebhookRejectedError,
    WebhookUnavailableError,
)
from coredumps.cleanup.incidents import (
    RestartTally,
    incident_key,
    incident_start,
    loop_start,
    restart_count,
    tally_restarts,
)
from coredumps.cleanup.live import ORIGINAL_REPLICAS, LiveInstance, Workload, read_instance
from coredumps.cleanup.records import Decision, Entry, Row, outcome_key

__all__ = [
    "ORIGINAL_REPLICAS",
    "Decision",
    "Entry",
    "HelmFailedError",
    "HelmMissingError",
    "LiveInstance",
    "NothingToRestoreError",
    "Proposal",
    "RestartTally",
    "Row",
    "WebhookRejectedError",
    "WebhookUnavailableError",
    "Workload",
    "action_refusal",
    "duration",
    "incident_key",
    "incident_start",
    "loop_start",
    "namespace_refusal",
    "outcome_key",
    "over_limit",
    "plan",
    "propose",
    "read_instance",
    "restart_count",
    "scale_order",
    "stand_down",
    "tally_restarts",
]
