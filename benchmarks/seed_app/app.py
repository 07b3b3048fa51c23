"""The seed design Hiker replaced: one Flask process, an in-memory ``threading.Timer`` per user,
and the reply sent to Graph inline from the webhook handler before Meta gets its 200.

Served by Flask's own threaded server (``app.run(threaded=True)``: a thread per connection,
HTTP/1.0, so one connection per request), as a single-process Flask app with in-memory timers
is run; a pre-fork server would split the timers between processes. The Graph call is a plain
``requests.post`` per reply. Werkzeug's access log is off, as pywa's and Hiker's are. Every
message of a body is handled (with one message per body, as the benchmark sends, the seed's
``messages[0]`` would do the same).

Run inside the benchmark venv (``bench-results/venv``):
    SEED_PORT=... SEED_GRAPH_URL=http://127.0.0.1:PORT SEED_APP_SECRET=... python app.py
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading

import requests
from flask import Flask, abort, request

GRAPH_URL = os.environ["SEED_GRAPH_URL"].rstrip("/")
API_VERSION = os.environ.get("SEED_API_VERSION", "23.0")
APP_SECRET = os.environ["SEED_APP_SECRET"].encode()
TOKEN = os.environ.get("SEED_TOKEN", "bench-token")
VERIFY_TOKEN = os.environ.get("SEED_VERIFY_TOKEN", "bench-verify")
IDLE_SECONDS = float(os.environ.get("SEED_IDLE_SECONDS", "600"))

app = Flask(__name__)
timers: dict[str, threading.Timer] = {}
timers_lock = threading.Lock()


def send_text(phone_number_id: str, to: str, text: str) -> None:
    response = requests.post(
        f"{GRAPH_URL}/v{API_VERSION}/{phone_number_id}/messages",
        json={
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": text},
        },
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    response.raise_for_status()


def restart_timer(phone_number_id: str, user: str) -> None:
    timer = threading.Timer(IDLE_SECONDS, send_text, (phone_number_id, user, "are you there"))
    timer.daemon = True
    with timers_lock:
        previous = timers.pop(user, None)
        timers[user] = timer
    if previous is not None:
        previous.cancel()
    timer.start()


@app.get("/webhook")
def verify() -> str:
    args = request.args
    if args.get("hub.mode") != "subscribe" or args.get("hub.verify_token") != VERIFY_TOKEN:
        abort(403)
    return args.get("hub.challenge", "")


@app.post("/webhook")
def webhook() -> tuple[str, int]:
    body = request.get_data()
    expected = "sha256=" + hmac.new(APP_SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-Hub-Signature-256", ""), expected):
        abort(401)
    update = request.get_json(force=True)
    for entry in update.get("entry", []):
        for change in entry.get("changes", []):
            value = change.get("value", {})
            phone_number_id = value.get("metadata", {}).get("phone_number_id", "")
            for message in value.get("messages", []):
                user = message["from"]
                restart_timer(phone_number_id, user)
                text = message.get("text", {}).get("body", "")
                if message.get("type") == "text" and text.strip().lower() == "hello":
                    send_text(phone_number_id, user, "hello to you too")
    return "ok", 200


if __name__ == "__main__":
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host="127.0.0.1", port=int(os.environ["SEED_PORT"]), threaded=True)
