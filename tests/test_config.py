"""Consumer settings: unknown keys fail at add_consumer, naming the nearest valid one."""

from __future__ import annotations

import pytest

from evkafka import EVKafkaApp, Handler
from evkafka.config import aiokafka_consumer_kwargs, consumer_settings
from evkafka.errors import ConfigError


def test_misspelled_key_names_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError, match=r"'group_idd'.*did you mean 'group_id'"):
        EVKafkaApp().add_consumer({"topics": ["t"], "group_idd": "g"}, Handler())  # type: ignore[typeddict-unknown-key]


def test_unknown_key_without_a_close_match() -> None:
    with pytest.raises(ConfigError, match=r"unknown consumer config key 'zzz'$"):
        consumer_settings({"topics": ["t"], "zzz": 1})  # type: ignore[typeddict-unknown-key]


@pytest.mark.parametrize("topics", [None, [], "single-string", [{"description": "no name"}], [3]])
def test_topics_must_be_a_list_of_names_or_topic_configs(topics: object) -> None:
    config = {"group_id": "g"} if topics is None else {"topics": topics}
    with pytest.raises(ConfigError, match="topic"):
        consumer_settings(config)  # type: ignore[arg-type]


def test_topic_configs_with_descriptions_are_accepted() -> None:
    consumer_settings({"topics": [{"name": "a", "description": "A"}, "b"]})


def test_invalid_commit_mode() -> None:
    with pytest.raises(ConfigError, match="auto_commit_mode"):
        consumer_settings({"topics": ["t"], "auto_commit_mode": "sometimes"})  # type: ignore[typeddict-item]


@pytest.mark.parametrize("key", ["auto_commit_interval_ms", "max_endpoint_exec_time_ms", "partition_buffer_size"])
def test_non_positive_limits_are_rejected(key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        consumer_settings({"topics": ["t"], key: 0})  # type: ignore[misc]


def test_evkafka_keys_never_reach_aiokafka_and_auto_commit_is_off() -> None:
    settings = consumer_settings(
        {
            "topics": ["t"],
            "group_id": "g",
            "enable_auto_commit": True,
            "auto_commit_mode": "pre-commit",
            "cluster_name": "main",
            "max_endpoint_exec_time_ms": 60_000,
        }
    )
    kwargs = aiokafka_consumer_kwargs(settings)
    assert kwargs["enable_auto_commit"] is False
    assert kwargs["group_id"] == "g"
    assert kwargs["max_poll_interval_ms"] == 60_000
    for own in ("topics", "auto_commit_mode", "cluster_name", "max_endpoint_exec_time_ms", "auto_commit_interval_ms"):
        assert own not in kwargs


def test_duplicate_consumer_name_is_rejected() -> None:
    app = EVKafkaApp()
    app.add_consumer({"topics": ["a"]}, Handler(), name="c")
    with pytest.raises(ConfigError, match="'c'"):
        app.add_consumer({"topics": ["b"]}, Handler(), name="c")


def test_app_event_without_default_config_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="default consumer"):
        EVKafkaApp().event("E")
