#!/usr/bin/env bash
# From zero to a handed-over shipment, over HTTP with curl and jq, against a running stack
# (`make run`). Every step is a real call a user would make; tests/e2e/test_walkthrough.py runs
# this very script against the whole stack, so it stays true.
#
#   docs/integration/walkthrough.sh            # uses http://127.0.0.1:8001..8004
#   R=… A=… D=… P=… docs/integration/walkthrough.sh
set -euo pipefail

R=${R:-http://127.0.0.1:8001}   # request service
A=${A:-http://127.0.0.1:8002}   # allocation service
D=${D:-http://127.0.0.1:8003}   # delivery service
P=${P:-http://127.0.0.1:8004}   # projection service
AIDLINE=${AIDLINE:-aidline}

token() { "$AIDLINE" token --quiet "$@"; }   # development tokens (the dev secret)
RECIPIENT=$(token --role recipient)
DONOR=$(token --role donor --nation PL)
FORUM=$(token --role forum)
PLANNER=$(token --role planner)

post() {  # post <url> <token> <json> [curl args…]: prints the answer, fails on 4xx/5xx
  local url=$1 tok=$2 body=$3; shift 3
  curl -sS --fail-with-body -X POST "$url" -H "Authorization: Bearer $tok" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: $(cat /proc/sys/kernel/random/uuid)" \
    -d "$body" "$@"
}
get() { curl -sS --fail-with-body "$1" -H "Authorization: Bearer $2"; }
until_found() {  # until_found <what> <command…>: retries while events travel between services
  local what=$1 out; shift
  for _ in $(seq 1 120); do
    out=$("$@") && [[ -n "$out" && "$out" != null ]] && { echo "$out"; return; }
    sleep 0.5
  done
  echo "no $what after 60 s" >&2; return 1
}
step() { printf '\n== %s\n' "$*" >&2; }

step "1. The recipient states a need"
REQ=$(post "$R/requirements" "$RECIPIENT" "{
  \"item_code\": \"ART-155-HE\", \"quantity\": 2000, \"priority\": 1,
  \"needed_by\": \"$(date -u -d '+45 days' +%F)\", \"destination\": \"Operational Command East\",
  \"justification\": \"Counter-battery fire; stocks last three weeks.\",
  \"stated_on\": \"$(date -u -d '-10 days' +%F)\"}" | jq -r .id)
echo "requirement $REQ" >&2

step "2. Poland pledges (a donor token acts for its own nation only)"
PLEDGE=$(post "$R/pledges" "$DONOR" "{
  \"donor\": \"PL\", \"item_code\": \"ART-155-HE\", \"quantity\": 2000, \"source\": \"stock\",
  \"available_from\": \"$(date -u +%F)\", \"value_eur\": 8000000,
  \"announced_on\": \"$(date -u -d '-6 days' +%F)\"}" | jq -r .id)
echo "pledge $PLEDGE" >&2

step "3. The forum met three days ago: endorses the need, confirms the pledge (one atomic decision)"
# Business time: the need was stated ten days ago, the pledge announced six days ago and the
# meeting held three days ago (`stated_on`, `announced_on`, `meeting_date`: each event's
# ce_occurredat); what follows happens now.
DECISION=$(post "$R/decisions" "$FORUM" "{
  \"meeting_date\": \"$(date -u -d '-3 days' +%F)\", \"reference\": \"UDCG-walkthrough\",
  \"endorse\": [{\"requirement_id\": \"$REQ\", \"priority\": 1}],
  \"confirm\": [\"$PLEDGE\"]}" | jq -r .id)
echo "decision $DECISION" >&2

step "4. The planning cell allocates; a planner approves (If-Match: the version read)"
ALLOC=$(until_found allocation bash -c "curl -sS '$A/allocations?requirement_id=$REQ&status=proposed' \
  -H 'Authorization: Bearer $PLANNER' | jq -r '.items[0].allocation_id // empty'")
VERSION=$(get "$A/allocations/$ALLOC" "$PLANNER" | jq -r .version)
post "$A/allocations/$ALLOC/approve" "$PLANNER" '{}' -H "If-Match: \"$VERSION\"" | jq -c . >&2
get "$A/requirements/$REQ/coverage" "$PLANNER" | jq -c . >&2

step "5. The shipment moves: donor dispatches, the hub receives, inspects, hands over"
SHIP=$(until_found shipment bash -c "curl -sS '$D/shipments?status=planned&limit=200' \
  -H 'Authorization: Bearer $PLANNER' | jq -r --arg a '$ALLOC' \
  '[.items[] | select(.allocation_id == \$a)][0].shipment_id // empty'")
SHIPMENT=$(get "$D/shipments/$SHIP" "$PLANNER")
HUB=$(jq -r .hub <<<"$SHIPMENT")
QUANTITY=$(jq -r .quantity <<<"$SHIPMENT")
HUB_OPS=$(token --role hub --hub "$HUB")
echo "shipment $SHIP: $QUANTITY through $HUB" >&2
post "$D/shipments/$SHIP/dispatch" "$DONOR" '{"mode": "road", "carrier_ref": "PL-TRK-0042"}' >/dev/null
post "$D/shipments/$SHIP/arrive" "$HUB_OPS" '{}' >/dev/null
post "$D/shipments/$SHIP/inspect" "$HUB_OPS" '{"result": "passed", "notes": "seals intact"}' >/dev/null
post "$D/shipments/$SHIP/depart" "$HUB_OPS" '{}' >/dev/null
post "$D/shipments/$SHIP/handover" "$HUB_OPS" \
  "{\"received_good\": $QUANTITY, \"damaged\": 0, \"short\": 0}" >/dev/null
EVENT=$(post "$D/shipments/$SHIP/receive" "$RECIPIENT" '{}' | jq -r .event_id)

step "6. The board, once the receipt is applied (read-your-writes: after_event)"
get "$P/board/requirements/$REQ?after_event=$EVENT" "$PLANNER" | jq .
get "$P/shipments/$SHIP/timeline" "$PLANNER" | jq -c '[.milestones[].type]' >&2

step "7. The forum's question: of what it decided, what reached Ukraine, what is stuck, and why?"
# The decision's execution view (also the dashboard's decisions panel; ?format=csv): each line
# from confirmed to received, the days each step took since the meeting, what is stuck.
get "$P/decisions/$DECISION/execution?after_event=$EVENT" "$FORUM" | jq -c '{
  decision_id, meeting_date, reference, requirements, stuck,
  lines: [.lines[] | {kind, id, confirmed, allocated, dispatched, handed_over, received,
                      days_to_allocated, days_to_received, stuck}]}' >&2
