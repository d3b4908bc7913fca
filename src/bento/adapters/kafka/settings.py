"""Settings of the Kafka MessageBus (seed 003's `kafka` block: brokers, producer, consumer, security).

Imports no client, so settings load (and `bento config show` works) without the extra.
Everything the adapter creates on the broker (topics, dead-letter topics) is derived from
these fields, so two services with the same settings agree on names without talking.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr, field_validator

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.credentials import SecretUrl

_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


class KafkaSettings(MessageBusSettingsBase):
    """Connection, producer, consumer and topic settings (`EVENT__BACKEND=kafka`).

    `url` is `kafka://host:9092` (`kafka+ssl://` for TLS); several brokers are
    comma-separated (`kafka://h1:9092,h2:9092`). A user and password in it
    (`kafka://user:pw@…`) are the SASL credentials and are never shown.
    """

    backend: Literal["kafka"] = "kafka"
    url: SecretUrl = Field(
        SecretUrl("kafka://127.0.0.1:9092"),
        description="bootstrap brokers, comma-separated; credentials in it are never shown",
    )
    client_id: str = Field("bento", description="client id shown in the broker's logs and quotas")

    # -- topics ---------------------------------------------------------------------------
    topic_prefix: str = Field("", description="prepended to every topic name (e.g. 'prod.')")
    create_topics: bool = Field(
        True, description="create missing topics with the admin client; False: a missing topic is an error"
    )
    partitions: int = Field(8, ge=1, description="partitions of a topic the bus creates")
    replication_factor: int = Field(1, ge=1, description="replicas of a topic the bus creates")
    dead_letter_partitions: int = Field(1, ge=1, description="partitions of a dead-letter topic (1: one order)")

    # -- producer -------------------------------------------------------------------------
    acks: Literal["all", "1", "0"] = Field("all", description="required acks; 'all' waits for every in-sync replica")
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "none"
    linger: float = Field(0.0, ge=0, description="seconds the producer waits to fill a batch (flush frequency)")
    batch_size: int = Field(16384, ge=1, description="bytes per partition batch")
    max_request_size: int = Field(1048576, ge=1, description="largest request (and so message) in bytes")
    publish_timeout: float = Field(10.0, gt=0, description="seconds a send may take before it fails")
    publish_retries: int = Field(3, ge=0, description="re-sends after a retriable failure (broker moved, timeout)")
    retry_backoff: float = Field(0.1, ge=0, description="seconds between the producer's retries")
    idempotent: bool = Field(
        False, description="idempotent producer (needs a real Kafka; tansu refuses it); forces acks='all'"
    )

    # -- consumer -------------------------------------------------------------------------
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a group without committed offsets starts; 'earliest' loses nothing"
    )
    session_timeout: float = Field(10.0, gt=0, description="seconds without heartbeat before a member is dropped")
    heartbeat_interval: float = Field(1.0, gt=0)
    max_processing_time: float = Field(
        300.0, gt=0, description="max seconds between polls before the member is dropped (max.poll.interval)"
    )
    fetch_min_bytes: int = Field(1, ge=1)
    fetch_max_bytes: int = Field(52428800, ge=1)
    max_partition_fetch_bytes: int = Field(1048576, ge=1)
    fetch_max_wait: float = Field(0.5, ge=0, description="seconds the broker may wait for fetch_min_bytes")
    max_poll_records: int = Field(500, ge=1, description="records taken from the client per poll")
    max_concurrency: int = Field(
        16,
        ge=1,
        description="handlers running at once per subscriber; messages with the same key never run at once "
        "(1: one at a time, in partition order)",
    )
    max_uncommitted: int = Field(
        10000, ge=1, description="received but unsettled messages per subscriber before fetching pauses"
    )
    commit_interval: float = Field(0.2, gt=0, description="seconds between offset commits")

    # -- security -------------------------------------------------------------------------
    security_protocol: SecurityProtocol | None = Field(
        None, description="None: SSL for kafka+ssl://, SASL_* when the URL or sasl_username has credentials"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    # -- health ---------------------------------------------------------------------------
    connection_check_interval: float = Field(
        5.0, gt=0, description="seconds between metadata probes that detect a lost and restored broker"
    )

    @field_validator("url")
    @classmethod
    def _url_is_kafka(cls, value: SecretUrl) -> SecretUrl:
        raw = value.get_secret_value()
        scheme, sep, rest = raw.partition("://")
        if sep and scheme.lower() not in {"kafka", "kafka+ssl"}:
            raise ValueError("url must start with kafka:// or kafka+ssl:// (or be host:port,…)")
        if not (rest if sep else raw).rsplit("@", 1)[-1].strip(", "):
            raise ValueError("url names no broker")
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_is_topic_safe(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("topic_prefix may hold only letters, digits, '.', '_' and '-'")
        return value

    @property
    def address(self) -> str:
        """The brokers for messages and logs, credentials masked."""
        return str(self.url)

    def bootstrap_servers(self) -> list[str]:
        """`host:port` of each bootstrap broker (no credentials)."""
        raw = self.url.get_secret_value()
        hosts = raw.partition("://")[2] if "://" in raw else raw
        hosts = hosts.rsplit("@", 1)[-1].split("/", 1)[0]
        return [h.strip() for h in hosts.split(",") if h.strip()]

    def credentials(self) -> tuple[str, str] | None:
        """SASL user and password: the settings' own, else the URL's userinfo."""
        if self.sasl_username is not None:
            password = self.sasl_password.get_secret_value() if self.sasl_password else ""
            return self.sasl_username, password
        raw = self.url.get_secret_value()
        if "://" not in raw or "@" not in raw:
            return None
        userinfo = raw.partition("://")[2].rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        return unquote(user), unquote(password)

    def protocol(self) -> SecurityProtocol:
        if self.security_protocol is not None:
            return self.security_protocol
        tls = self.url.get_secret_value().lower().startswith("kafka+ssl://")
        if self.credentials() is not None:
            return "SASL_SSL" if tls else "SASL_PLAINTEXT"
        return "SSL" if tls else "PLAINTEXT"
