"""The typed settings tree: configs/config.yaml, then environment overrides.

Keys keep the original agent's sections and camelCase names. Build the tree
once at the entrypoint with ``load_config`` and pass it down.

Precedence, highest first:
    1. environment variables ``COREDUMP_AGENT_<SECTION>__<KEY>`` (case-insensitive,
       ``__`` between levels), e.g. ``COREDUMP_AGENT_ANALYZER__VALUETHRESHOLD=6``;
       lists and mappings as JSON
    2. the YAML file (``--config PATH``, ``COREDUMP_AGENT_CONFIG`` or configs/config.yaml)
    3. the defaults below

Durations ("5m") and sizes ("2GB") parse into seconds and bytes. Secrets are
never read from the file: API keys, S3 credentials and the dashboard token
come only from the environment or a mounted Secret (see ``secrets.py``).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AliasGenerator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from coredumps.errors import ConfigError
from coredumps.gdb import DEFAULT_TIMEOUT, GdbLaunch
from coredumps.units import parse_duration, parse_size

ENV_PREFIX = "COREDUMP_AGENT_"
CONFIG_ENV = "COREDUMP_AGENT_CONFIG"
DEFAULT_CONFIG_PATH = Path("configs/config.yaml")
_YAML_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when present: the same rules, faster


class _YAML_LOADER(_YAML_BASE):  # type: ignore[misc,valid-type]
    """The safe loader, refusing a key given twice in one mapping (YAML would keep the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key!r} is given twice", key_node.start_mark)
                seen.add(key)
        return dict(super().construct_mapping(node, deep=deep))
_LAUNCH = GdbLaunch()  # the analyzer's GDB defaults live with GDB's launch

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; accepts "30s", "5m", "1h30m", "7d" or a number of seconds."""
Size = Annotated[int, BeforeValidator(parse_size)]
"""Bytes; accepts "100MB", "2GB", "512MiB" or a number of bytes."""

# Keys that would hold secrets: refused in the file, read from the environment.
_SECRET_KEYS = {
    ("analyzer", "aiAnalysis", "apiKey"): "GLM_API_KEY or OPENAI_API_KEY (or the variable aiAnalysis.apiKeyEnv names)",
    ("storage", "s3", "accessKey"): "AWS_ACCESS_KEY_ID",
    ("storage", "s3", "secretKey"): "AWS_SECRET_ACCESS_KEY",
    ("dashboard", "authToken"): "COREDUMP_AGENT_DASHBOARD_TOKEN",
}


class Section(BaseModel):
    """A config section: camelCase keys, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=to_camel, serialization_alias=to_camel),
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        defer_build=True,
    )


class AgentConfig(Section):
    name: str = Field("milvus-coredump-agent", description="Tags every coredump's flow run agent:<name>.")
    namespace: str = Field("default", description="Accepted for the original agent's config files; not used.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Level of the agent's own log lines (-v: debug for every logger)."
    )
    log_language: Literal["en", "zh"] = Field(
        "en", description="Language of the one-line score breakdown; zh keeps the original's Chinese form."
    )
    node_name: str = Field(
        "", description="This node's name; empty means the NODE_NAME environment variable, else the hostname."
    )
    data_dir: str = Field("data", description="Where the SQLite database, ledger and scratch files live.")
    metrics_port: int = Field(8080, ge=0, le=65535, description="Prometheus /metrics port.")
    health_port: int = Field(8081, ge=0, le=65535, description="/healthz and /readyz port.")

    def resolved_node_name(self) -> str:
        import socket

        return self.node_name or os.environ.get("NODE_NAME", "") or socket.gethostname()


class DiscoveryConfig(Section):
    scan_interval: Duration = Field(30.0, description="How often Milvus instances are re-listed.")
    namespaces: list[str] = Field(
        default_factory=lambda: ["default", "milvus-system"], description="Namespaces searched for Milvus."
    )
    helm_release_labels: list[str] = Field(
        default_factory=lambda: ["app.kubernetes.io/name=milvus", "helm.sh/chart=milvus"],
        description="Label selectors (key=value or key) that mark a Helm-deployed Milvus pod.",
    )
    operator_labels: list[str] = Field(
        default_factory=lambda: ["app.kubernetes.io/managed-by=milvus-operator", "milvus.io/instance"],
        description="Label selectors that mark an operator-deployed Milvus pod.",
    )


class CollectorConfig(Section):
    coredump_path: str = Field(
        "/var/lib/systemd/coredump", description="Folder watched for finished coredumps (as the agent sees it)."
    )
    host_coredump_path: str = Field(
        "/var/lib/systemd/coredump", description="The same folder as the host sees it (for journal lookups)."
    )
    watch_interval: Duration = Field(10.0, description="Interval of the safety sweep of the folder.")
    max_file_age: Duration = Field(86400.0, description="Older files are skipped (default 24h).")
    max_file_size: Size = Field(2 * 10**9, description="Larger files are skipped, with a row saying why (2GB).")
    stable_for: Duration = Field(
        2.0, description="A file whose size has not changed for this long counts as finished (no inotify, NFS)."
    )
    delete_after_store: bool = Field(
        False, description="Delete the source after its stored copy is verified. Unstored files are never deleted."
    )


class ScoringConfig(Section):
    """The original's rule weights; each applies once. Breakdown points add up to the total before the cap."""

    base: float = Field(4.0, ge=0, description="Every core starts here.")
    crash_reason: float = Field(
        2.0, ge=0, description="A clear crash reason was found (an unknown reason earns nothing)."
    )
    panic_keyword: float = Field(1.0, ge=0, description="The reason contains one of analyzer.panicKeywords.")
    stack_trace: float = Field(1.5, ge=0, description="The stack trace is longer than stackTraceMinChars.")
    multi_thread: float = Field(0.5, ge=0, description="More than one thread.")
    pod_association: float = Field(1.0, ge=0, description="The core is tied to a pod and a Milvus instance.")
    signal_severity: float = Field(1.0, ge=0, description="SIGSEGV, SIGABRT or SIGFPE.")
    file_size: float = Field(0.5, ge=0, description="The core is larger than largeFileSize.")
    freshness: float = Field(0.5, ge=0, description="The core is younger than freshWithin.")
    max_score: float = Field(10.0, gt=0, description="The total is capped here.")
    stack_trace_min_chars: int = Field(100, ge=0, description="Characters of stack trace needed for its points.")
    large_file_size: Size = Field(100 * 10**6, description="Size above which a core earns the file-size points.")
    fresh_within: Duration = Field(3600.0, description="Age below which a core earns the freshness points.")


class AIPricing(Section):
    input_per_million: float = Field(0.0, ge=0, description="USD per million prompt tokens (0 for free models).")
    output_per_million: float = Field(0.0, ge=0, description="USD per million completion tokens.")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an http(s) endpoint of ours, in words that never repeat its credentials."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "the value is not a URL"
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "the value"
        return f"{shown} is not an http(s) URL"
    if parts.username or parts.password:
        return "the URL must not hold credentials; put them in the environment"
    return None


def _endpoint_url(value: str) -> str:
    """An optional endpoint URL (empty: the default one) that ``url_problem`` finds nothing wrong with."""
    if value.strip() and (problem := url_problem(value.strip())):
        raise ValueError(problem)
    return value


class AIAnalysisConfig(Section):
    enabled: bool = Field(False, description="Ask an LLM for a root-cause write-up of kept coredumps.")
    provider: Literal["glm", "openai", "openai-compatible"] = Field("glm", description="Which API shape and key.")
    model: str = Field("glm-4.5-flash", description="Model name sent in the request.")
    base_url: str = Field(
        "",
        validation_alias="baseURL",
        serialization_alias="baseURL",
        description="Full chat-completions URL or a base ending in /v1; empty uses the provider's public URL."
    )
    api_key_env: str = Field(
        "", description="Name of the environment variable holding the key (default by provider)."
    )
    timeout: Duration = Field(30.0, description="Per-request timeout.")
    max_tokens: int = Field(2000, gt=0, description="Completion token limit (GLM rejects other values).")
    temperature: float = Field(0.3, ge=0, le=2, description="Sampling temperature (GLM rejects other values).")
    enable_cost_control: bool = Field(True, description="Enforce maxAnalysisPerHour and maxCostPerMonth.")
    max_cost_per_month: float = Field(100.0, ge=0, description="USD; analyses stop for the month once reached.")
    max_analysis_per_hour: int = Field(50, ge=0, description="Hard cap on requests in any rolling hour.")
    one_per_crash_group: bool = Field(
        True, description="Later members of a crash group reuse the group's analysis instead of a new call."
    )
    redact_patterns: list[str] = Field(
        default_factory=list, description="Extra regular expressions removed from prompts before sending."
    )
    pricing: AIPricing = Field(default_factory=AIPricing)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        return _endpoint_url(value)

    @model_validator(mode="after")
    def _endpoint_known(self) -> AIAnalysisConfig:
        if self.enabled and self.provider == "openai-compatible" and not self.base_url.strip():
            raise ValueError("provider openai-compatible needs baseURL, the endpoint's URL")
        return self

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"'{pattern}' is not a valid regular expression: {exc}") from exc
        return value


class AnalyzerConfig(Section):
    enable_gdb_analysis: bool = Field(
        True, description="Run GDB on each core; false reads only its ELF notes (no stacks)."
    )
    gdb_path: str = Field(_LAUNCH.gdb_path, description="GDB executable.")
    gdb_timeout: Duration = Field(
        DEFAULT_TIMEOUT, gt=0, description="Hard wall-clock limit for one GDB run; GDB is killed after it."
    )
    gdb_memory_limit: Size = Field(
        _LAUNCH.memory_limit,
        description="Address-space limit of the GDB process, so a hostile core cannot exhaust the node.",
    )
    executable: str = Field(
        "", description="Executable to load with every core; empty finds it from the core (or use --exe)."
    )
    sysroot: str = Field("", description="GDB sysroot, e.g. a container image's root unpacked on the node.")
    solib_search_path: list[str] = Field(default_factory=list, description="Extra folders for shared libraries.")
    debuginfod_urls: list[str] = Field(
        default_factory=list, description="debuginfod servers; empty keeps debuginfod (and its network use) off."
    )
    gdb_index_cache_size: Size = Field(
        2**30,
        description="Size limit of GDB's index cache (agent.dataDir/gdb-index-cache), which makes repeated "
        "crashes of one build load faster; 0 turns it off.",
    )
    max_frames: int = Field(64, ge=4, description="Frames kept per thread: the innermost and outermost halves.")
    max_threads: int = Field(256, ge=1, description="Threads whose stacks are listed in full.")
    value_threshold: float = Field(7.0, ge=0, le=10, description="Score at or above which a core is kept.")
    max_concurrent_analyses: int = Field(2, ge=1, description="GDB runs at once per node.")
    ignore_patterns: list[str] = Field(
        default_factory=lambda: ["livenessProbe", "readinessProbe", "startupProbe"],
        description="Cores whose executable or file name contains one of these are skipped.",
    )
    panic_keywords: list[str] = Field(
        default_factory=lambda: ["panic", "fatal", "SIGSEGV", "SIGABRT", "SIGFPE", "assertion failed"],
        description="Words in the crash reason (case-insensitive) that earn the panic points and mark is_panic.",
    )
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)
    ai_analysis: AIAnalysisConfig = Field(default_factory=AIAnalysisConfig)


class S3Config(Section):
    bucket: str = Field("", description="Bucket name.")
    region: str = Field("", description="Region; empty lets the endpoint decide.")
    endpoint: str = Field("", description="Endpoint URL for S3-compatible stores (MinIO, Ceph); empty is AWS.")
    prefix: str = Field("coredumps", description="Key prefix under which objects are written.")
    multipart_chunk_size: Size = Field(16 * 2**20, description="Part size of multipart uploads (16MiB).")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return _endpoint_url(value)


class StorageConfig(Section):
    backend: Literal["local", "nfs", "s3"] = Field("local", description="Where kept coredumps go.")
    local_path: str = Field("data/coredumps", description="Folder for the local backend (one folder per instance).")
    nfs_path: str = Field("", description="Mounted NFS folder for the nfs backend.")
    max_storage_size: Size = Field(50 * 10**9, description="Retention trims the store to this total (50GB).")
    retention_days: int = Field(30, ge=0, description="Stored cores older than this are deleted by retention.")
    keep_per_instance: int = Field(50, ge=0, description="Most cores kept per instance (0 means no limit).")
    high_value_score: float = Field(
        9.0, ge=0, le=10, description="Cores at or above this score are kept twice as long by retention."
    )
    compression_enabled: bool = Field(True, description="Compress stored cores (see compression).")
    compression: Literal["zstd", "gzip", "none"] = Field("zstd", description="Compression of stored cores.")
    compression_level: int = Field(
        1, ge=1, le=19,
        description="zstd level; 1 is the fastest (less CPU taken from Milvus on the node), higher levels make "
        "smaller files for more CPU.",
    )
    compression_threads: int = Field(0, ge=0, description="zstd worker threads; 0 uses every core, at most 4.")
    s3: S3Config = Field(default_factory=S3Config)


class CleanerConfig(Section):
    enabled: bool = Field(True, description="Count restarts and act on crash-looping instances.")
    action: Literal["dry-run", "scale-to-zero", "delete-cr", "helm-uninstall"] = Field(
        "dry-run", description="What cleanup does; dry-run only records what it would do."
    )
    max_restart_count: int = Field(5, ge=1, description="Restarts within restartTimeWindow that trigger cleanup.")
    restart_time_window: Duration = Field(3600.0, description="Window in which restarts are counted.")
    cleanup_delay: Duration = Field(300.0, description="Delay before cleanup runs; it can be cancelled meanwhile.")
    uninstall_timeout: Duration = Field(600.0, description="Timeout of helm uninstall.")
    namespaces: list[str] = Field(
        default_factory=list, description="Namespaces where cleanup may act; empty means nowhere."
    )
    protect_label: str = Field(
        "coredump-agent/protect", description='Instances labelled with this key set to "true" are never cleaned up.'
    )


class AlertingConfig(Section):
    enabled: bool = Field(False, description="Post cleanup decisions to webhookUrl.")
    webhook_url: str = Field("", description="Webhook receiving a JSON message per cleanup decision.")


class MonitorConfig(Section):
    prometheus_enabled: bool = Field(True, description="Serve /metrics.")
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)


class ViewerConfig(Section):
    enabled: bool = Field(True, description="Allow launching viewer pods.")
    image: str = Field("milvus-coredump-viewer:0.1.0", description="Image with GDB and ttyd (deploy/viewer).")
    default_duration: int = Field(30, ge=1, description="Minutes a viewer lives by default.")
    max_duration: int = Field(120, ge=1, description="Longest a viewer may live, in minutes.")
    max_concurrent_pods: int = Field(3, ge=1, description="Viewers running at once.")
    coredump_path: str = Field(
        "/var/lib/systemd/coredump",
        description="Accepted for the original agent's config files; a viewer mounts the stored copy itself.",
    )
    web_terminal_port: int = Field(7681, ge=1, le=65535, description="ttyd port.")


class DashboardConfig(Section):
    enabled: bool = Field(True, description="Serve the dashboard; false makes the dashboard command refuse.")
    port: int = Field(8082, ge=0, le=65535, description="Dashboard port.")
    path: str = Field("/dashboard", pattern=r"^(/[A-Za-z0-9._~-]+)*/?$", description="URL prefix.")
    viewer_namespace: str = Field("default", description="Namespace of viewer pods.")
    viewer: ViewerConfig = Field(default_factory=ViewerConfig)


class ExportConfig(Section):
    dest: str = Field(
        "data/parquet", description="The Parquet dataset: a folder or s3://bucket/prefix (S3 settings as storage)."
    )
    batch_rows: int = Field(50_000, ge=1_000, description="Rows read and written per batch, bounding memory.")


class DatabaseConfig(Section):
    url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at <agent.dataDir>/coredump_agent.db."
    )
    busy_timeout: Duration = Field(30.0, description="SQLite busy timeout.")


class Config(Section):
    """The whole tree. Built once by ``load_config``."""

    agent: AgentConfig = Field(default_factory=AgentConfig)
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig)
    collector: CollectorConfig = Field(default_factory=CollectorConfig)
    analyzer: AnalyzerConfig = Field(default_factory=AnalyzerConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    cleaner: CleanerConfig = Field(default_factory=CleanerConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)

    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{Path(self.agent.data_dir) / 'coredump_agent.db'}"


def _structured(annotation: Any) -> bool:
    """Whether an environment value for this field is JSON (lists, mappings, whole sections)."""
    if isinstance(annotation, type):
        return issubclass(annotation, (BaseModel, list, dict, tuple, set))
    origin = get_origin(annotation)
    if origin in (list, dict, tuple, set):
        return True
    return any(_structured(arg) for arg in get_args(annotation) if arg is not type(None))


def _field_key(model: type[BaseModel], data: dict[str, Any], part: str) -> tuple[str, Any] | None:
    """The key of ``data`` (existing, else the camelCase alias) and the annotation for an env name part."""
    for name, field in model.model_fields.items():
        alias = to_camel(name)
        if part in (name.lower(), alias.lower()):
            key = next((k for k in data if isinstance(k, str) and k.lower() in (name.lower(), alias.lower())), alias)
            return key, field.annotation
    return None


def _apply_environment(data: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Overlay ``COREDUMP_AGENT_<SECTION>__<KEY>`` variables (case-insensitive) on the file's values.

    Variables under the prefix that name no section (``COREDUMP_AGENT_CONFIG``, the dashboard
    token, ...) are not config keys and are left alone; a wrong key inside a section is an error.
    Returns the variable that set each key, by the key's dotted path.
    """
    applied: dict[str, str] = {}
    for variable in sorted(environ):
        if not variable.upper().startswith(ENV_PREFIX):
            continue
        parts = variable[len(ENV_PREFIX):].lower().split("__")
        model: type[BaseModel] = Config
        node = data
        path_so_far: list[str] = []
        for depth, part in enumerate(parts):
            found = _field_key(model, node, part)
            if found is None and depth == 0:
                break  # names no section: not a config variable
            if found is None:
                raise ConfigError(f"environment {variable}: {part} is not a key of that section")
            key, annotation = found
            if depth == len(parts) - 1:
                value: Any = environ[variable]
                if _structured(annotation):
                    try:
                        value = json.loads(value)
                    except ValueError as exc:
                        raise ConfigError(f"environment {variable}: not valid JSON ({exc})") from exc
                node[key] = value
                applied[".".join([*path_so_far, key])] = variable
                break
            path_so_far.append(key)
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ConfigError(f"environment {variable}: {part} is a value, not a section")
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node, model = child, annotation
    return applied


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if not isinstance(part, int)) or "(top level)"


def _reason(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check the spelling against configs/config.yaml)"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _refuse_secrets(data: dict[str, Any], source: str) -> None:
    for path, env in _SECRET_KEYS.items():
        node: Any = data
        for part in path:
            if not isinstance(node, dict) or part not in node:
                break
            node = node[part]
        else:
            if node not in (None, ""):
                raise ConfigError(
                    f"{source}: {'.'.join(path)}: secrets are not read from files; "
                    f"remove it and set {env} in the environment (or a mounted Secret)"
                )
            _drop(data, path)


def _drop(data: dict[str, Any], path: tuple[str, ...]) -> None:
    node = data
    for part in path[:-1]:
        node = node[part]
    node.pop(path[-1], None)


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: --config, then $COREDUMP_AGENT_CONFIG, then configs/config.yaml if present."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, validate and return the config; a bad value raises ConfigError naming its key."""
    source_path = config_path(path)
    data: dict[str, Any] = {}
    source = "defaults"
    if source_path is not None:
        source = str(source_path)
        try:
            with open(source_path, encoding="utf-8") as handle:
                loaded = yaml.load(handle, Loader=_YAML_LOADER)  # noqa: S506 - a safe loader
        except FileNotFoundError as exc:
            raise ConfigError(f"{source}: config file not found") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source}: cannot read the config file: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}".replace("\n", " ")) from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{source}: the top level must be a mapping of sections")
        data = loaded
    _refuse_secrets(data, source)
    from_environment = _apply_environment(data, dict(os.environ))
    try:
        return Config(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        key = _format_loc(first["loc"])
        origin = f"environment {from_environment[key]}" if key in from_environment else source
        raise ConfigError(f"{origin}: {key}: {_reason(first)}{more}") from exc
