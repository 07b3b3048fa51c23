"""``hiker parked list|replay``: look at parked sends, and put them back on the send path.

The sender parks a send command in ``hiker.sender.parked`` when Graph refuses it for good (an
expired token, a closed 24 h window, a bad parameter), when retries run out, or when a previous
attempt died during its Graph call (in doubt), with the reason in its headers
(``ParkedHeaders``). Once the cause is fixed (say, a renewed token), ``replay`` publishes the
parked commands to the outbox again as first attempts.

- ``model``: a parked message as an operator sees it;
- ``queue``: listing and replaying, on the shared held-queue reader (``hiker.tools.heldqueue``);
- ``cli``: the command's options and output;
- ``events``: the same for events a backend never took (``--events``: ``hiker.events.parked``).

What ``replay`` guarantees, per parked message:
- it is never lost: the parked copy is acked only after the broker confirmed the replayed one;
- the user gets it once: the sender sends at most once per idempotency key (its ``sent:{key}``
  record in Redis, released when it parks a send, written when a send succeeds). A parked copy
  whose key the sender has since recorded as sent is obsolete: ``replay`` removes it without
  publishing. That covers a run that died after publishing but before its ack, once the replayed
  copy went through; if that copy is still on its way, the next run publishes the send again and
  the sender drops whichever copy comes second. So a crash can at worst publish a command twice,
  never send a message twice, and never lose one.
Why not a marker keyed by the time of parking: that header is a float, which AMQP tables carry
as 32 bits (about two minutes of resolution today), so a send parked again soon after a replay
would look replayed already and be dropped. The sender's own record has no such blind spot.
The record lasts as long as the sender keeps it (7 days): a copy whose replay was sent earlier
than that, and whose ack was lost, would be sent again.
"""
