"""``hiker events``: signed JSON events for a backend, delivered at least once to each endpoint.

Shape: one queue per endpoint, fed by a fan-out, rather than one queue with per-endpoint state.

    hiker.inbound (message.#, status.#) ─┐
    hiker.outcomes (parked.#) ───────────┴▶ hiker.events.inbound ─▶ stamp: id + seq (Redis)
        ─▶ hiker.events ─▶ hiker.events.deliver.<endpoint>  (one per endpoint, own consumer)
                              ▲            │ 5xx/408/429/timeout/refused
                              └─ hiker.events.retry.<endpoint>.<delay>ms (TTL, dead-letters back)
                                           │ 4xx, or past HIKER_EVENTS_RETRY_HOURS
                                           ▼
                                  hiker.events.parked  (``hiker parked list --events``)

Why a queue per endpoint: an event's fate differs per endpoint (delivered to one, waiting for
another, parked for a third), and a queue is exactly the durable per-endpoint state that takes
(what is left to do, in order, with its own retries). Each has its own consumer, prefetch and
HTTP session, so an endpoint that is down or slow fills its own queue and holds its own
consumer's slots, and nothing else: the other endpoints' consumers go on, and replies never
meet this service at all (it has its own copy of every inbound event; its queues drop their
oldest rather than refuse a publish, so even a full one cannot make ingress answer 503). One
queue with per-endpoint state would have to ack a message only once every endpoint took it,
so one dead endpoint would hold every event (and its retries would re-POST to the healthy
endpoints, or need a side store of who got what, which is the queue again, built by hand).

Why a stamp stage before the fan-out: ``seq`` must follow the order in which Hiker saw the
events of a conversation and be the same for every endpoint. Given once per event id in the
stamp queue's order (``events.sequence``), it travels in the body; retries, redeliveries and
replays carry the same bytes, so ``id`` and ``seq`` never change after the stamp.

Modules: ``model`` (the envelope, its data, ids; pure), ``delivery`` (verdicts and delays;
pure), ``parking`` (why an event was parked; pure), ``sequence`` (Redis), ``client`` (HTTP),
``outbox`` (AMQP publishing), ``handlers``, ``consumers`` (AMQP edges), ``metrics``, ``app``.
"""
