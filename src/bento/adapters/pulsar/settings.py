"""Settings of the Pulsar MessageBus.

Every field has a default that works against a local broker, so
`PulsarSettings(service_url="pulsar://host:6650")` is a complete configuration.
Names follow pulsar-client's own options where there is one, so its documentation
applies. Secrets (`auth_token`, and `service_url`, which may carry credentials) are
secret-typed and never printed; `str(settings.service_url)` is the URL with them masked.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bento.adapters.shared.settings_base import MessageBusSettingsBase
from bento.application.credentials import SecretUrl

SubscriptionKind = Literal["shared", "key_shared", "failover", "exclusive"]
Compression = Literal["none", "lz4", "zlib", "zstd", "snappy"]


class PulsarSettings(MessageBusSettingsBase):
    """Connection, producer and subscription options of one Pulsar bus instance."""

    backend: Literal["pulsar"] = "pulsar"

    # -- connection -------------------------------------------------------------------
    service_url: SecretUrl = Field(SecretUrl("pulsar://127.0.0.1:6650"), description="pulsar:// or pulsar+ssl:// URL")
    tenant: str = "public"
    namespace: str = "default"
    auth_token: SecretStr | None = Field(None, description="JWT for token authentication")
    tls_trust_certs_file_path: str | None = None
    tls_allow_insecure_connection: bool = False
    tls_validate_hostname: bool = False
    tls_certificate_file_path: str | None = Field(None, description="client certificate (mutual TLS)")
    tls_private_key_file_path: str | None = Field(None, description="client key (mutual TLS)")
    operation_timeout_seconds: int = Field(30, ge=1, description="lookups, subscribe, create producer, close")
    connection_timeout_ms: int = Field(10_000, ge=100)
    io_threads: int = Field(1, ge=1)
    client_log_level: Literal["debug", "info", "warn", "error"] = Field(
        "warn", description="pulsar-client's own log lines at or above this level go to stdout"
    )
    client_logs_to_python: bool = Field(
        False, description="route pulsar-client logs through Python logging instead (much slower)"
    )

    # -- producers (one cached per topic) ---------------------------------------------
    batching_enabled: bool = Field(
        True, description="KeyBased batching: Key_Shared needs it (pulsar-lite stalls without it)"
    )
    batching_max_messages: int = Field(1000, ge=1)
    batching_max_bytes: int = Field(128 * 1024, ge=1024)
    batching_max_publish_delay_ms: int = Field(
        1, ge=0, description="how long a batch may wait for more messages; publish() waits at most this"
    )
    compression: Compression = "none"
    max_pending_messages: int = Field(10_000, ge=1, description="sends awaiting the broker, per bus")
    send_timeout_ms: int = Field(30_000, ge=0, description="a send not confirmed in this time fails")

    # -- subscriptions ----------------------------------------------------------------
    subscription_type: SubscriptionKind = Field("shared", description="type of group subscriptions")
    ordered_subscription_type: Literal["key_shared", "failover", "exclusive"] = Field(
        "key_shared", description="type used when subscribe(..., ordered=True)"
    )
    broadcast_subscription_type: Literal["exclusive", "shared"] = Field(
        "exclusive", description="type of the private subscription behind group=None"
    )
    initial_position: Literal["latest", "earliest"] = "latest"
    receiver_queue_size: int = Field(1000, ge=1, description="messages pre-fetched per consumer")
    concurrency: int = Field(16, ge=1, description="handlers running at once per subscriber")
    dead_letter_topic: str = Field(
        "{topic}-{group}-DLQ", description="template; {topic} and {group} (or 'broadcast') are filled in"
    )
    pattern_subscriptions: bool = Field(
        False, description="allow `*` topics via regex subscriptions (Apache Pulsar; pulsar-lite lacks them)"
    )
    pattern_discovery_seconds: int = Field(1, ge=1, description="how often new matching topics are found")
    reconnect_check_interval: float = Field(
        0.25, gt=0, description="seconds between connection checks (reconnect callbacks, metrics)"
    )

    @field_validator("service_url")
    @classmethod
    def _known_scheme(cls, value: SecretUrl) -> SecretUrl:
        url = value.get_secret_value()
        if not url.startswith(("pulsar://", "pulsar+ssl://")):
            # Only the scheme is quoted: the rest of the URL may hold credentials.
            scheme = url.split("://", 1)[0][:20] if "://" in url else "none"
            raise ValueError(f"service_url must start with pulsar:// or pulsar+ssl:// (its scheme is {scheme!r})")
        if "@" in url.split("://", 1)[1].split("/", 1)[0]:
            # pulsar-client refuses `user:password@` (quoting it back in a ValueError).
            raise ValueError("service_url must not carry credentials (user:password@); set auth_token instead")
        return value

    @property
    def uses_tls(self) -> bool:
        return self.service_url.get_secret_value().startswith("pulsar+ssl://")

    def full_topic(self, topic: str) -> str:
        """`persistent://{tenant}/{namespace}/{topic}`; a name with a scheme is used as is."""
        if "://" in topic:
            return topic
        return f"persistent://{self.tenant}/{self.namespace}/{topic}"

    def dead_letter_topic_for(self, topic: str, group: str | None) -> str:
        """The DLQ topic of `topic` for `group` (in the same namespace as `topic`)."""
        prefix, short = f"persistent://{self.tenant}/{self.namespace}", topic
        if "://" in topic:
            prefix, _, short = topic.rpartition("/")
        name = self.dead_letter_topic.format(topic=_legal(short), group=_legal(group or "broadcast"))
        return name if "://" in name else f"{prefix}/{name}"


def _legal(name: str) -> str:
    """Pattern characters are not legal in Pulsar topic names; DLQ names replace them."""
    return "".join(c if c.isalnum() or c in "-_.=:%" else "_" for c in name)
