"""The wire layout and settings checks of the NATS adapter (no server needed for most)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from bento.adapters.nats import NatsMessageBus, NatsSettings
from bento.adapters.nats._consumer import _delivery_count
from bento.adapters.nats._limits import (
    HEADERS_DROPPED_HEADER,
    ORIGINAL_SEQUENCE_HEADER,
    ORIGINAL_STREAM_HEADER,
    TRUNCATED_HEADER,
    fit_dead_letter,
    frame_bytes,
)
from bento.adapters.nats._subjects import Layout, check_topic, group_token
from bento.application.errors import ConfigurationError


def test_subjects_put_the_partition_before_the_topic() -> None:
    layout = Layout(NatsSettings(subject_prefix="shop", partitions=8))
    partition = layout.partition_of("order-1")
    assert partition == layout.partition_of("order-1") and 0 <= partition < 8
    assert layout.publish_subject("orders.placed", partition) == f"shop.p{partition}.orders.placed"
    assert layout.filter_subject("orders.*") == "shop.*.orders.*"
    assert layout.filter_subject("orders", 3) == "shop.p3.orders"
    assert layout.topic_of(f"shop.p{partition}.orders.placed") == "orders.placed"
    assert layout.dead_letter_subject("billing", "orders.placed") == "shop_dlq.billing.orders.placed"
    assert layout.dead_letter_subject(None, "orders") == "shop_dlq._broadcast.orders"


def test_consumer_names_are_per_topic_and_safe() -> None:
    layout = Layout(NatsSettings())
    assert layout.consumer_name("billing", "a") != layout.consumer_name("billing", "b")
    name = layout.consumer_name("team.billing *", "a", 2)
    assert name.endswith("_p2") and not set(name) & set(".* >")
    assert group_token("a.b") != group_token("a_b")


@pytest.mark.parametrize(
    ("topic", "wildcards", "ok"),
    [
        ("orders.placed", False, True),
        ("orders.*", True, True),
        ("orders.*", False, False),
        ("orders.>", True, False),
        ("orders..placed", True, False),
        ("orders placed", True, False),
        ("orders.pl*ced", True, False),
        ("", True, False),
    ],
)
def test_topics_must_be_subject_tokens(topic: str, wildcards: bool, ok: bool) -> None:
    assert (check_topic(topic, allow_wildcards=wildcards) is None) is ok


def test_the_attempt_comes_from_the_ack_subject() -> None:
    assert _delivery_count("$JS.ACK.S.C.3.10.9.1700000000000000000.0") == 3
    assert _delivery_count("$JS.ACK.dom.hash.S.C.4.10.9.1700000000000000000.0.tok") == 4
    assert _delivery_count("not-an-ack") == 1


def test_settings_refuse_names_that_are_not_tokens() -> None:
    with pytest.raises(ValidationError):
        NatsSettings(subject_prefix="a.b")
    with pytest.raises(ValidationError):
        NatsSettings(stream_name="has space")


async def test_a_stream_whose_subjects_overlap_is_a_configuration_error(
    nats_settings: Callable[..., NatsSettings],
) -> None:
    settings = nats_settings()
    async with NatsMessageBus(settings):
        clash = settings.model_copy(update={"stream_name": f"{settings.stream_name}_OTHER"})
        with pytest.raises(ConfigurationError, match="refused"):
            async with NatsMessageBus(clash):
                pass


def test_only_partition_subjects_are_routable() -> None:
    layout = Layout(NatsSettings(subject_prefix="shop", partitions=8))
    assert layout.routable("shop.p0.orders") and layout.routable("shop.p7.orders.placed")
    for subject in ("shop.orders", "shop.orders.placed", "shop.p8.orders", "shop.p03.orders", "shop.p3", "x.p3.o"):
        assert not layout.routable(subject), subject
    assert not layout.routable("shop.p\u00b2.orders")  # a unicode digit is not a partition


def test_a_dead_letter_is_cut_to_max_payload_and_names_the_original() -> None:
    headers = {"x-mine": "m" * 50, "x-bento-error-type": "E", "Nats-Msg-Id": "dlq:c:7"}
    assert fit_dead_letter(b"small", headers, max_payload=4096, stream="S", sequence=7) == (b"small", headers)
    body, cut = fit_dead_letter(b"b" * 5000, headers, max_payload=4096, stream="S", sequence=7)
    assert frame_bytes(body, cut) == 4096 and body == b"b" * len(body)
    assert (cut[TRUNCATED_HEADER], cut[ORIGINAL_STREAM_HEADER], cut[ORIGINAL_SEQUENCE_HEADER]) == ("5000", "S", "7")
    huge = {**headers, "x-mine": "m" * 5000}
    body, cut = fit_dead_letter(b"b" * 10, huge, max_payload=4096, stream="S", sequence=7)
    assert "x-mine" not in cut and cut[HEADERS_DROPPED_HEADER] == "1" and cut["x-bento-error-type"] == "E"
    assert frame_bytes(body, cut) <= 4096
