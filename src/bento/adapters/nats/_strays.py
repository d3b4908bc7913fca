"""Messages the stream accepted on a subject outside the layout, moved to the dead letters.

The stream captures `{prefix}.>`, but subscribers filter `{prefix}.*.{topic}` (unordered)
or `{prefix}.p{n}.{topic}` (ordered). A message published by other means on
`{prefix}.orders` (no partition token) or `{prefix}.p99.orders` (a partition that does not
exist) is stored, and no consumer will ever match it — or only the unordered ones, under
a wrong topic. nats-server 2.9 cannot refuse such subjects: with stream subjects
`{prefix}.p{n}.>` it rejects every unordered filter `{prefix}.*.{topic}` ("not a valid
subset"), and consumers take a single filter before 2.10. So the bus sweeps instead: it
lists the stream's subjects, copies each message on a subject outside the layout to the
dead-letter subject `{prefix}_dlq._unrouted.{subject without prefix}` with the reason,
and only then deletes it from the stream. Nothing accepted disappears; two buses
sweeping at once record each letter once (`Nats-Msg-Id`).
"""

from __future__ import annotations

import logging

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from bento.adapters.nats._limits import fit_dead_letter
from bento.adapters.nats._subjects import Layout
from bento.adapters.nats.settings import NatsSettings
from bento.adapters.shared.delivery import (
    ATTEMPTS_HEADER,
    ERROR_MESSAGE_HEADER,
    ERROR_TYPE_HEADER,
    ORIGINAL_TOPIC_HEADER,
)

logger = logging.getLogger(__name__)

#: The group name under which unroutable messages are dead-lettered (`dead_letters(topic, group=UNROUTED_GROUP)`).
UNROUTED_GROUP = "_unrouted"
#: Dead-letter header naming the subject the message was stored on.
ORIGINAL_SUBJECT_HEADER = "x-bento-original-subject"
ERROR_TYPE = "UnroutableSubject"


async def sweep_unrouted(js: JetStreamContext, settings: NatsSettings, layout: Layout, max_payload: int) -> int:
    """Move every message on an unroutable subject to the dead letters; return how many."""
    info = await js.stream_info(settings.stream_name, subjects_filter=f"{layout.prefix}.>")
    strays = [s for s in (info.state.subjects or {}) if not layout.routable(s)]
    moved = 0
    for subject in strays:
        moved += await _move_subject(js, settings, layout, subject, max_payload)
    if moved:
        logger.warning(
            "moved %d message(s) stored on subjects outside the layout %s.p<0..%d>.<topic> to the dead letters "
            "(group %r); first subject: %.200s",
            moved,
            layout.prefix,
            layout.partitions - 1,
            UNROUTED_GROUP,
            strays[0],
        )
    return moved


async def _move_subject(js: JetStreamContext, settings: NatsSettings, layout: Layout, subject: str, limit: int) -> int:
    stream, moved, after = settings.stream_name, 0, 1
    rest = subject[len(layout.prefix) + 1 :] or "_"
    target = layout.dead_letter_subject(UNROUTED_GROUP, rest)
    reason = (
        f"stored on subject {subject[:200]!r}, outside the layout {layout.prefix}.p<0..{layout.partitions - 1}>"
        ".<topic>: no subscriber can receive it"
    )
    while True:
        try:
            msg = await js.get_msg(stream, seq=after, subject=subject, next=True)
        except nats.js.errors.NotFoundError:
            return moved
        sequence = msg.seq or after
        headers = {k: v for k, v in (msg.headers or {}).items() if not k.startswith("Nats-")}
        headers.update(
            {
                ERROR_TYPE_HEADER: ERROR_TYPE,
                ERROR_MESSAGE_HEADER: reason,
                ATTEMPTS_HEADER: "0",
                ORIGINAL_TOPIC_HEADER: rest,
                ORIGINAL_SUBJECT_HEADER: subject,
                "Nats-Msg-Id": f"unrouted:{stream}:{sequence}",
            }
        )
        body, headers = fit_dead_letter(msg.data or b"", headers, max_payload=limit, stream=stream, sequence=sequence)
        await js.publish(target, body, headers=headers, timeout=settings.publish_timeout)
        try:
            await js.delete_msg(stream, sequence)
        except nats.js.errors.APIError as exc:  # another bus swept it first
            logger.debug("unrouted message %d already gone: %s", sequence, exc)
        moved += 1
        after = sequence + 1
