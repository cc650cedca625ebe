"""The names of Aidline's topics (DESIGN.md §3)."""

REQUESTS = "aidline.requests"
ALLOCATIONS = "aidline.allocations"
DELIVERIES = "aidline.deliveries"


def dlq_topic(topic: str, consumer: str) -> str:
    """Where `consumer` puts the messages of `topic` it cannot process."""
    return f"{topic}.dlq.{consumer}"
