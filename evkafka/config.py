"""Consumer and producer settings, checked once at registration."""

from __future__ import annotations

import difflib
import ssl
from collections.abc import Callable
from typing import Any, Literal, TypedDict, Union

from evkafka.errors import ConfigError


class TopicConfig(TypedDict, total=False):
    """A topic named with a description (for the API documentation)."""

    name: str
    description: str


class BrokerConfig(TypedDict, total=False):
    """Connection settings shared by consumers and producers (aiokafka's names)."""

    bootstrap_servers: str | list[str]
    client_id: str
    metadata_max_age_ms: int
    request_timeout_ms: int
    retry_backoff_ms: int
    api_version: str
    connections_max_idle_ms: int
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    ssl_context: ssl.SSLContext
    sasl_mechanism: str
    sasl_plain_username: str
    sasl_plain_password: str
    sasl_kerberos_service_name: str
    sasl_kerberos_domain_name: str
    sasl_oauth_token_provider: Any
    cluster_name: str
    cluster_description: str


class ConsumerConfig(BrokerConfig, total=False):
    """What `add_consumer` takes: topics, group and aiokafka consumer options."""

    topics: list[Union[str, TopicConfig]]  # noqa: UP007
    group_id: str
    group_instance_id: str
    fetch_max_wait_ms: int
    fetch_max_bytes: int
    fetch_min_bytes: int
    max_partition_fetch_bytes: int
    auto_offset_reset: Literal["earliest", "latest", "none"]
    check_crcs: bool
    partition_assignment_strategy: Any
    max_poll_interval_ms: int
    rebalance_timeout_ms: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    max_poll_records: int
    consumer_timeout_ms: int
    exclude_internal_topics: bool
    isolation_level: Literal["read_uncommitted", "read_committed"]
    client_rack: str
    auto_commit_mode: Literal["post-commit", "pre-commit"]
    auto_commit_interval_ms: int
    max_endpoint_exec_time_ms: int
    enable_auto_commit: bool
    startup_timeout_ms: int
    partition_buffer_size: int


class ProducerConfig(BrokerConfig, total=False):
    """What `add_producer` and `EVKafkaProducer` take: aiokafka options plus `topic`."""

    topic: str
    acks: Literal[0, 1, "all"]
    compression_type: Literal["gzip", "snappy", "lz4", "zstd"]
    max_batch_size: int
    partitioner: Callable[..., int]
    max_request_size: int
    linger_ms: int
    enable_idempotence: bool
    transactional_id: str
    transaction_timeout_ms: int


#: Keys evkafka reads itself and never passes to aiokafka.
CONSUMER_OWN_KEYS = frozenset(
    {
        "topics",
        "cluster_name",
        "cluster_description",
        "auto_commit_mode",
        "auto_commit_interval_ms",
        "max_endpoint_exec_time_ms",
        "enable_auto_commit",
        "startup_timeout_ms",
        "partition_buffer_size",
    }
)
PRODUCER_OWN_KEYS = frozenset({"topic", "cluster_name", "cluster_description"})

CONSUMER_DEFAULTS: dict[str, Any] = {
    "bootstrap_servers": "localhost",
    "auto_commit_mode": "post-commit",
    "auto_commit_interval_ms": 1000,
    "max_endpoint_exec_time_ms": 300_000,
    "startup_timeout_ms": 30_000,
    "partition_buffer_size": 2000,
}


def _keys(td: type) -> frozenset[str]:
    return frozenset(td.__annotations__) | frozenset(
        k for base in td.__mro__ for k in getattr(base, "__annotations__", {})
    )


CONSUMER_KEYS = _keys(ConsumerConfig)
PRODUCER_KEYS = _keys(ProducerConfig)


def check_keys(config: dict[str, Any], valid: frozenset[str], what: str) -> None:
    """Reject unknown keys, naming the closest valid one."""
    for key in config:
        if key in valid:
            continue
        close = difflib.get_close_matches(key, sorted(valid), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {what} config key {key!r}{hint}")


def topic_names(config: dict[str, Any]) -> list[str]:
    """The topic names of a consumer config; a clear ConfigError if `topics` is malformed."""
    topics = config.get("topics")
    if not topics or isinstance(topics, str):
        raise ConfigError(
            "consumer config needs 'topics': a list of topic names or TopicConfig dicts"
        )
    names = []
    for t in topics:
        if isinstance(t, str):
            names.append(t)
        elif isinstance(t, dict) and isinstance(t.get("name"), str):
            names.append(t["name"])
        else:
            raise ConfigError(
                f"invalid topic entry {t!r}: use a name or {{'name': ..., 'description': ...}}"
            )
    return names


def consumer_settings(config: ConsumerConfig) -> dict[str, Any]:
    """The full consumer config with evkafka defaults filled in, validated."""
    check_keys(dict(config), CONSUMER_KEYS, "consumer")
    merged: dict[str, Any] = {**CONSUMER_DEFAULTS, **config}
    topic_names(merged)
    if merged["auto_commit_mode"] not in ("post-commit", "pre-commit"):
        raise ConfigError(
            f"auto_commit_mode must be 'post-commit' or 'pre-commit', not {merged['auto_commit_mode']!r}"
        )
    for key in (
        "auto_commit_interval_ms",
        "max_endpoint_exec_time_ms",
        "startup_timeout_ms",
        "partition_buffer_size",
    ):
        if not isinstance(merged[key], int) or merged[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, not {merged[key]!r}")
    return merged


def aiokafka_consumer_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """What goes to AIOKafkaConsumer: everything but evkafka's own keys; commits are ours."""
    kwargs = {k: v for k, v in settings.items() if k not in CONSUMER_OWN_KEYS}
    kwargs["enable_auto_commit"] = False
    kwargs.setdefault("max_poll_interval_ms", settings["max_endpoint_exec_time_ms"])
    return kwargs


def producer_settings(config: ProducerConfig) -> dict[str, Any]:
    """The producer config with evkafka defaults filled in; unknown keys are a ConfigError."""
    check_keys(dict(config), PRODUCER_KEYS, "producer")
    return {"bootstrap_servers": "localhost", **config}


def aiokafka_producer_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    """What goes to AIOKafkaProducer: everything but evkafka's own keys."""
    return {k: v for k, v in settings.items() if k not in PRODUCER_OWN_KEYS}
