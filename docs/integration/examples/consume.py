"""Follow Aidline's events with aiokafka: decode the CloudEvents headers and the JSON data.

    python docs/integration/examples/consume.py                     # every topic, from the start
    python docs/integration/examples/consume.py --topic aidline.deliveries --group my-dashboard

Without `--group` it reads every partition from the beginning and commits nothing (a replay).
With `--group` it joins a consumer group and commits after each event it handled, so a restart
carries on where it stopped: at-least-once, so skip ids (`ce_id`) you have already handled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Sequence

from aiokafka import AIOKafkaConsumer

from shared.contracts import REGISTRIES
from shared.domain import DomainEvent
from shared.messaging.envelope import Envelope, EnvelopeError, decode

Handler = Callable[[Envelope, DomainEvent | None], Awaitable[None]]


def typed(event: Envelope) -> DomainEvent | None:
    """The event as its contract dataclass (older schema versions upcast), if Aidline knows it."""
    for registry in REGISTRIES.values():
        if event.event_type in registry:
            try:
                return registry.decode(event.event_type, event.schema_version, event.data)
            except (ValueError, LookupError) as exc:  # newer than this copy of the contracts
                print(f"cannot decode {event.event_type} v{event.schema_version}: {exc}")
    return None


async def print_event(event: Envelope, domain_event: DomainEvent | None) -> None:
    print(
        f"{event.time:%Y-%m-%d %H:%M:%S} {event.event_type:<30} {event.subject:<24} "
        f"actor={event.meta.actor} correlation={event.meta.correlation_id or '-'}\n"
        f"    {domain_event if domain_event is not None else event.data}"
    )


async def main(
    topics: Sequence[str],
    *,
    bootstrap_servers: str,
    group_id: str | None = None,
    limit: int | None = None,
    handle: Handler = print_event,
) -> int:
    """Consume `topics` until `limit` events were handled (or forever); returns how many."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    handled = 0
    try:
        # Without a group aiokafka takes every partition itself and, with nothing committed,
        # starts each at its earliest offset.
        consumer.subscribe(list(topics))
        async for record in consumer:
            try:
                event = decode(record.headers, record.value)
            except EnvelopeError as exc:  # not an Aidline event: report it and go on
                print(f"skipping {record.topic}/{record.partition}/{record.offset}: {exc}")
                continue
            await handle(event, typed(event))
            if group_id is not None:
                await consumer.commit()
            handled += 1
            if limit is not None and handled >= limit:
                break
    finally:
        await consumer.stop()
    return handled


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topic", action="append", help="default: the three event topics")
    parser.add_argument("--group", help="consumer group id (default: none, replay from 0)")
    parser.add_argument("--limit", type=int, help="stop after this many events")
    parser.add_argument(
        "--bootstrap-servers",
        default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
    )
    args = parser.parse_args()
    topics = args.topic or list(REGISTRIES)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends a follow
        asyncio.run(
            main(topics, bootstrap_servers=args.bootstrap_servers, group_id=args.group,
                 limit=args.limit)
        )  # fmt: skip


if __name__ == "__main__":
    cli()
