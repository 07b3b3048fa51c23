"""``hiker doctor``: check a setup and print what is fine, what is not, and how to fix each.

Checks, in this order:
- configuration: each service's ``HIKER_*`` variables, validated as the service itself would;
- the rules file (``HIKER_RULES_FILE``), parsed as conversation would parse it;
- RabbitMQ: login and vhost, every exchange and queue of ``hiker.core.topology`` (the idle-timer
  wait queue of ``HIKER_IDLE_TIMEOUT_SECONDS`` and of every per-number timeout in the rules file
  included) declared with the expected arguments, and the permissions the services need
  (configure, write);
- Redis: reachable and writable (a prefixed key set with a short expiry, then deleted);
- Graph API: the access token accepted and the phone number id known (a read-only ``GET``), and
  the token's expiry where Graph tells it;
- ingress: the webhook URL answers Meta's verification handshake;
- the api's database (where the api's variables are set): reachable, and its schema at the
  head migration of this version;
- the AI responder's model (where ``HIKER_AI_BASE_URL`` is set): one tiny chat completion,
  its latency, or the outcome the responder would count.

Statuses: ``OK``; ``WARN`` for what is not wrong by itself but worth knowing (a queue the
services have not declared yet, a check that could not run for lack of input); ``FAIL`` for what
stops the bot. The exit code is 0 unless a check failed (``--strict``: or warned).

Nothing is created: queues and exchanges are first declared passively (which only looks), and
only those that exist are re-declared with the expected arguments, which RabbitMQ treats as a
no-op when they match and refuses (PRECONDITION_FAILED) when they do not. The write-permission
probe publishes an empty message with a routing key no binding matches, which the broker drops.
No secret is printed: URLs are shown without passwords and every finding is scrubbed of the
secret values found in the environment.

In a stack whose services each see only their own variables (``--compose``, ``--service``), every
service's readiness is asked too, and a row that needs another container's variables is marked as
checked there (``SKIP``); see ``stack``.

- ``checkup``: ``diagnose``, every check in order;
- ``config``, ``rabbitmq``, ``redis``, ``graph``, ``ingress``, ``database``, ``ai``, ``stack``:
  the checks;
- ``report``: rows, statuses, exit code, table and JSON, secrets scrubbed;
- ``cli``: the command's options.
"""
