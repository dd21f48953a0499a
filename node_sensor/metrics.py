"""The sensor's Prometheus metrics. Flow runs execute inside the sensor process, so their outcomes land here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

FILES_SEEN = Counter("coredump_agent_files_seen_total", "Finished core files seen in the watched folder",
                     registry=REGISTRY)
FILES_SKIPPED = Counter("coredump_agent_files_skipped_total", "Files the sensor did not hand over, by reason",
                        ["reason"], registry=REGISTRY)
HANDED_OVER = Counter("coredump_agent_handed_over_total", "Files handed over to Prefect as flow runs",
                      registry=REGISTRY)
PROCESSED = Counter("coredump_agent_processed_total", "Coredumps processed, by outcome "
                    "(stored, skipped, failed, duplicate, crashed, cancelled)", ["outcome"], registry=REGISTRY)
SCORE = Histogram("coredump_agent_score", "Value scores of analysed coredumps",
                  buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), registry=REGISTRY)
CRASH_GROUPS = Gauge("coredump_agent_crash_group_size", "Coredumps seen in the crash group of the last core",
                     registry=REGISTRY)
RESTART_EVENTS = Counter("coredump_agent_restart_events_total", "Milvus container restarts seen, by Milvus instance",
                         ["milvus_instance"], registry=REGISTRY)
QUEUE_DEPTH = Gauge("coredump_agent_queue_depth", "Files waiting in the ledger, by state", ["state"],
                    registry=REGISTRY)
ERRORS = Counter("coredump_agent_errors_total", "Errors by kind", ["kind"], registry=REGISTRY)
HANDOVER_LATENCY = Histogram(
    "coredump_agent_handover_latency_seconds", "Seconds from a file being finished to its flow run completing",
    buckets=(0.5, 1, 2, 3, 5, 10, 30, 60, 120, 300, 900), registry=REGISTRY,
)
STORED_BYTES = Counter("coredump_agent_stored_bytes_total", "Bytes written to storage", registry=REGISTRY)
AI_ANALYSES = Counter("coredump_agent_ai_analyses_total", "AI root-cause analyses, by status "
                      "(ok, failed, skipped, reused)", ["status"], registry=REGISTRY)
AI_COST = Counter("coredump_agent_ai_cost_usd_total", "USD spent on AI analyses", registry=REGISTRY)
AI_TOKENS = Counter("coredump_agent_ai_tokens_total", "Tokens used by AI analyses", registry=REGISTRY)
STORAGE_USED = Gauge("coredump_agent_storage_used_bytes", "Bytes of stored coredumps the database knows",
                     registry=REGISTRY)
