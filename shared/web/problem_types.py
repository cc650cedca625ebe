"""Every problem type the services answer with (RFC 9457 `type`), and what it means.

A problem's `type` is the relative reference `/problems/<kind>`: resolved against the request's
address it names a page the same service serves (`shared/web/api_docs.py`), so it works behind
any host name and on a network without internet. `tests/unit/test_problem_types.py` reads the
code for every kind an answer can carry and fails when one is missing here.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPE_BASE = "/problems/"


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str
    means: str
    remedy: str


def type_uri(kind: str) -> str:
    return TYPE_BASE + kind


_RETRY = "Send the request again later; with the same Idempotency-Key a command is applied once."

PROBLEM_TYPES: dict[str, ProblemType] = {
    # -- the request itself
    "invalid-request": ProblemType(
        422,
        "Invalid request",
        "The request does not match the operation's schema, or a field "
        "names nothing usable; `errors` names each field and what is wrong with it.",
        "Correct the fields named in `errors` and send it again.",
    ),
    "unprocessable-content": ProblemType(
        422,
        "Unprocessable content",
        "A header the operation reads is malformed (the live "
        "stream's Last-Event-ID or `since` is not an event id).",
        "Resume from an event id the stream sent, or start without one.",
    ),
    "invalid-csv": ProblemType(
        422,
        "Invalid CSV",
        "The uploaded file is not CSV with the columns the import expects.",
        "Check the header row against the import's documented columns.",
    ),
    "invalid-row": ProblemType(
        422,
        "Invalid row",
        "A row of a batch upload does not match its milestone's schema; the "
        "other rows were applied or refused on their own.",
        "Correct the row named in the answer and send that row again.",
    ),
    "row-id-reused": ProblemType(
        409,
        "Row id reused",
        "A batch row's id was applied before with other content.",
        "Give new rows new ids; resend a row unchanged to have it counted once.",
    ),
    "unsupported-media-type": ProblemType(
        415,
        "Unsupported media type",
        "The body's Content-Type is not one the operation takes.",
        "Send the body with one of the media types the detail names.",
    ),
    "payload-too-large": ProblemType(
        413,
        "Payload too large",
        "The request body is larger than the service accepts (MAX_BODY_BYTES).",
        "Send less per request (split a batch or an import).",
    ),
    "event-too-large": ProblemType(
        413,
        "Content too large",
        "What the command would store is larger than the event topic "
        "takes; `errors` names the field responsible. Nothing was stored.",
        "Shorten the field named in `errors`.",
    ),
    "invalid-correlation-id": ProblemType(
        400,
        "Invalid X-Correlation-ID",
        "The X-Correlation-ID header is empty, too long or not visible ASCII.",
        "Use 1 to 128 visible ASCII characters, or leave the header out.",
    ),
    "invalid-idempotency-key": ProblemType(
        400,
        "Invalid Idempotency-Key",
        "The Idempotency-Key header is empty or too long.",
        "Use 1 to 200 characters, new for each new command.",
    ),
    "invalid-if-match": ProblemType(
        400,
        "Invalid If-Match",
        "The If-Match header is not an ETag the service handed out.",
        'Send the ETag of the version you read, such as "3".',
    ),
    # -- who is asking
    "missing-token": ProblemType(
        401,
        "Unauthorized",
        "The operation needs a bearer token and none was sent.",
        "Send `Authorization: Bearer <token>` from your identity provider.",
    ),
    "invalid-token": ProblemType(
        401,
        "Unauthorized",
        "The bearer token is expired, signed by an unknown key, or meant "
        "for another issuer or audience.",
        "Get a new token and send it again.",
    ),
    "unauthorized": ProblemType(
        401,
        "Unauthorized",
        "The request needs credentials it did not carry.",
        "Send a bearer token.",
    ),
    "token-in-url": ProblemType(
        401,
        "Unauthorized",
        "A token was sent in the query string, where it would end in logs.",
        "Trade the token for a stream ticket (POST /events/stream/tickets) and send that.",
    ),
    "invalid-ticket": ProblemType(
        401,
        "Unauthorized",
        "The stream ticket is unknown, used or expired.",
        "Ask for a new ticket and open the stream within its lifetime.",
    ),
    "keys-unavailable": ProblemType(
        503,
        "Keys unavailable",
        "The token is signed by a key the service has not seen and "
        "the identity provider's key set cannot be fetched now.",
        _RETRY,
    ),
    "forbidden": ProblemType(
        403,
        "Forbidden",
        "Your role may use the operation, but not on this resource.",
        "Ask someone whose role covers the resource.",
    ),
    "forbidden-role": ProblemType(
        403,
        "Forbidden",
        "None of your token's roles may use this operation.",
        "docs/access.md lists the roles each operation allows.",
    ),
    "forbidden-nation": ProblemType(
        403,
        "Forbidden",
        "The resource belongs to another nation than your token's.",
        "Act on your own nation's pledges and shipments only.",
    ),
    "forbidden-hub": ProblemType(
        403,
        "Forbidden",
        "The shipment is at, or bound for, another hub than your token's.",
        "Record milestones for your own hub only.",
    ),
    "forbidden-field": ProblemType(
        403,
        "Forbidden",
        "Your role may change the resource, but not this field of it.",
        "Leave the field named in the detail out.",
    ),
    "rate-limited": ProblemType(
        429,
        "Too many requests",
        "You sent more requests than the endpoint allows per minute.",
        "Wait for the seconds in Retry-After, then send it again.",
    ),
    "too-many-streams": ProblemType(
        429,
        "Too many streams",
        "You, or everyone together, hold as many live streams as the service allows.",
        "Close a stream you no longer read, or wait for Retry-After.",
    ),
    # -- the state of what is addressed
    "not-found": ProblemType(
        404,
        "Not found",
        "Nothing with this id exists, or it is not yours to see.",
        "Check the id; lists show what you may see.",
    ),
    "method-not-allowed": ProblemType(
        405,
        "Method not allowed",
        "The path exists, but not with this HTTP method.",
        "The Allow header names the methods it takes.",
    ),
    "version-mismatch": ProblemType(
        412,
        "Precondition failed",
        "The resource changed since the version your If-Match names.",
        "Read it again (the ETag header has the current version) and decide anew.",
    ),
    "concurrent-update": ProblemType(
        409,
        "Conflict",
        "The resource changed while the command ran.",
        "Send the command again.",
    ),
    "rule-violation": ProblemType(
        409,
        "Conflict",
        "A rule of the domain forbids the command in the resource's current "
        "state; the detail names the rule (a quantity out of range, a requirement already "
        "fulfilled, a shipment already handed over).",
        "Read the resource, then decide anew.",
    ),
    "idempotency-key-conflict": ProblemType(
        409,
        "Idempotency key reused",
        "This Idempotency-Key was used with another request body.",
        "Use a new key for a new command.",
    ),
    "idempotency-key-in-use": ProblemType(
        409,
        "Request in progress",
        "A request with this Idempotency-Key is still running.",
        "Send it again shortly; you will get that request's answer.",
    ),
    "replay-failed": ProblemType(
        409,
        "Replay failed",
        "Dead letters were replayed and failed again; they stay.",
        "Read the letters' errors (GET /admin/dead-letters) and fix the cause first.",
    ),
    "rebuild-running": ProblemType(
        409,
        "Rebuild already running",
        "A rebuild of the read models is already running.",
        "Follow it on GET /admin/status; start another once it has finished.",
    ),
    "resume-too-old": ProblemType(
        410,
        "Resume too old",
        "The stream cannot resume that far back.",
        "Load the board for the state, then open the stream without Last-Event-ID.",
    ),
    # -- the service
    "event-not-applied": ProblemType(
        504,
        "Not yet applied",
        "The event named in `after_event` was not applied within the wait the service allows.",
        "Ask again, or look at GET /admin/status for the lag.",
    ),
    "database-unavailable": ProblemType(
        503,
        "Database unavailable",
        "The service's database did not answer; a command may not have been stored.",
        _RETRY,
    ),
    "internal-error": ProblemType(
        500,
        "Internal error",
        "An unexpected error; it has been logged with the correlation id.",
        "Report the X-Correlation-ID of the answer to the operators.",
    ),
    "http-error": ProblemType(
        400,
        "HTTP error",
        "The request could not be served as sent.",
        "The detail says what to change.",
    ),
}
