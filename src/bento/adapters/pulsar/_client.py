"""Building the pulsar-client Client and the arguments of `Client.subscribe` from settings."""

from __future__ import annotations

import logging
import re
from typing import Any

import pulsar

from bento.adapters.pulsar.settings import PulsarSettings, SubscriptionKind

_LOG_LEVELS = {
    "debug": pulsar.LoggerLevel.Debug,
    "info": pulsar.LoggerLevel.Info,
    "warn": pulsar.LoggerLevel.Warn,
    "error": pulsar.LoggerLevel.Error,
}
_POSITIONS = {"earliest": pulsar.InitialPosition.Earliest, "latest": pulsar.InitialPosition.Latest}
#: How long a `batch_receive()` waits for a full burst once the first message was already queued.
_BATCH_WAIT_MS = 1
_CONSUMER_TYPES = {
    "shared": pulsar.ConsumerType.Shared,
    "key_shared": pulsar.ConsumerType.KeyShared,
    "failover": pulsar.ConsumerType.Failover,
    "exclusive": pulsar.ConsumerType.Exclusive,
}


def new_client(settings: PulsarSettings) -> pulsar.Client:
    """The client for `settings`: URL, token auth, TLS (blocking: creates client threads)."""
    s = settings
    authentication = pulsar.AuthenticationToken(s.auth_token.get_secret_value()) if s.auth_token else None
    return pulsar.Client(
        s.service_url.get_secret_value(),
        authentication=authentication,
        operation_timeout_seconds=s.operation_timeout_seconds,
        connection_timeout_ms=s.connection_timeout_ms,
        io_threads=s.io_threads,
        use_tls=s.uses_tls,
        tls_trust_certs_file_path=s.tls_trust_certs_file_path,
        tls_allow_insecure_connection=s.tls_allow_insecure_connection,
        tls_validate_hostname=s.tls_validate_hostname,
        tls_certificate_file_path=s.tls_certificate_file_path,
        tls_private_key_file_path=s.tls_private_key_file_path,
        logger=_client_logger(s),
    )


def _client_logger(settings: PulsarSettings) -> logging.Logger | pulsar.ConsoleLogger:
    # pulsar-client hands every log line (debug included) to a Python logger, each one
    # taking the GIL from its IO thread: that alone cut throughput by 2-5x here. So by
    # default its own console logger filters in C++ at `client_log_level`.
    if settings.client_logs_to_python:
        return logging.getLogger("bento.adapters.pulsar.client")
    return pulsar.ConsoleLogger(_LOG_LEVELS[settings.client_log_level])


def subscribe_arguments(
    settings: PulsarSettings, topic: str, kind: SubscriptionKind, *, nack_delay_ms: int
) -> tuple[str | re.Pattern[str], dict[str, Any]]:
    """The topic (or regex, for a `*` pattern) and keyword arguments of `Client.subscribe`."""
    options: dict[str, Any] = {
        "consumer_type": _CONSUMER_TYPES[kind],
        "receiver_queue_size": settings.receiver_queue_size,
        "negative_ack_redelivery_delay_ms": nack_delay_ms,
        "initial_position": _POSITIONS[settings.initial_position],
        "batch_receive_policy": pulsar.ConsumerBatchReceivePolicy(
            burst_size(settings.receiver_queue_size), -1, _BATCH_WAIT_MS
        ),
    }
    if "*" not in topic:
        return settings.full_topic(topic), options
    options["pattern_auto_discovery_period"] = settings.pattern_discovery_seconds
    return topic_regex(settings.full_topic(topic)), options


def burst_size(receiver_queue_size: int) -> int:
    """Messages one `batch_receive()` returns at most: a quarter of the receiver queue, 256 at most."""
    return max(1, min(256, receiver_queue_size // 4))


def topic_regex(full_pattern: str) -> re.Pattern[str]:
    """`*` becomes `.*`, everything else matches literally.

    No `/` may appear in the regex: the client parses the pattern as a topic name to
    find its namespace (a `[^/]` class made it an InvalidTopicName)."""
    return re.compile(".*".join(re.escape(part) for part in full_pattern.split("*")))
