"""``hiker api``: records inbound messages, sends and their statuses in a database, serves that
history to a backend and accepts sends from it into the sender's path."""
