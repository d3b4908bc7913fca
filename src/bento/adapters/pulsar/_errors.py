"""Translation of pulsar-client failures into Bento's port errors.

pulsar-client raises `pulsar.PulsarException` subclasses from calls and passes a
`pulsar.Result` to callbacks. Connection-level results become BrokerUnavailableError
(the caller can wait and retry), the rest PublishError / SubscribeError naming the
Pulsar result, so nothing from the driver crosses the port.
"""

from __future__ import annotations

import pulsar

from bento.application.errors import BrokerUnavailableError, PublishError, SubscribeError
from bento.domain.errors import BentoError

_UNREACHABLE = frozenset(
    {
        pulsar.Result.ConnectError,
        pulsar.Result.Timeout,
        pulsar.Result.LookupError,
        pulsar.Result.NotConnected,
        pulsar.Result.ServiceUnitNotReady,
        pulsar.Result.TooManyLookupRequestException,
    }
)


_UNREACHABLE_ERRORS: tuple[type[Exception], ...] = (
    pulsar.ConnectError,
    pulsar.Timeout,
    pulsar.LookupError,
    pulsar.NotConnected,
    pulsar.ServiceUnitNotReady,
    pulsar.TooManyLookupRequestException,
)


def is_unreachable(result: pulsar.Result | None) -> bool:
    return result in _UNREACHABLE


def publish_error(topic: str, service_url: str, result: pulsar.Result | None, detail: str = "") -> BentoError:
    reason = f"{result}{': ' + detail if detail else ''}"
    if is_unreachable(result):
        return BrokerUnavailableError("Pulsar broker", service_url, f"publish to {topic!r} not confirmed ({reason})")
    return PublishError(topic, f"Pulsar refused the message ({reason})")


def translate_publish(topic: str, service_url: str, exc: Exception) -> BentoError:
    if isinstance(exc, _UNREACHABLE_ERRORS):
        return BrokerUnavailableError("Pulsar broker", service_url, f"cannot publish to {topic!r} ({exc!r})")
    return PublishError(topic, f"Pulsar refused the producer ({exc!r})")


def translate_subscribe(topic: str, service_url: str, exc: Exception) -> BentoError:
    if isinstance(exc, _UNREACHABLE_ERRORS):
        return BrokerUnavailableError("Pulsar broker", service_url, f"cannot subscribe to {topic!r} ({exc})")
    return SubscribeError(topic, f"Pulsar refused the subscription ({exc})")
