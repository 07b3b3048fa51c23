"""``hiker poison list|replay``: messages that could not be processed, and a way back for them.

Two queues hold messages for a person:
- ``hiker.poison``: messages a consumer could never process (refused as malformed, or failed
  until the queue's delivery limit), dead-lettered from the queue they died in. Their ``x-death``
  header says where, why, how often and since when.
- ``hiker.inspect``: signed updates ingress does not act on (``change.*`` fields, bodies of an
  unknown shape), routed there by binding; they never died anywhere.

A body is one contract (JSON object) or a bundle of contracts of one type (JSON array, header
``x-hiker-bundle``); the listing shows each item's id with phone numbers masked, never a text.

Once the cause is fixed (Redis writable again, a bug fixed, a consumer for a new field deployed),
``replay`` puts each selected message back on its original route, whole (a bundle as a bundle):
- a poisoned message to the queue it died in, through the default exchange, so that sibling
  queues bound to the same exchange do not get a second copy;
- an inspected message to the exchange and routing key it was delivered with. Every queue bound
  to that key gets it, ``hiker.inspect`` included, so a copy comes back there, marked as replayed
  (``x-hiker-replayed-at``); replays skip copies so marked unless named with ``--id``.

Reading and replaying use the shared held-queue reader (``hiker.tools.heldqueue``): a listing
leaves both queues as it found them, and a message is removed only after the broker confirmed its
replayed copy. A crash between the two leaves both, so the next run replays it again: a replay
can publish a message twice, never lose one. The consumers deduplicate by their claims (a wamid,
an idempotency key), so a second copy never becomes a second reply or send.

- ``model``: a held message as an operator sees it, and where a replay sends it;
- ``queue``: listing and replaying;
- ``cli``: the command's options and output.
"""
