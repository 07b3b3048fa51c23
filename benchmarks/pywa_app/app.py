"""The same job as Hiker, done the pywa way: FastAPI + uvicorn, signature validation on, and a
``hello`` handler that replies through pywa's Graph client (pointed at Hiker's Graph mock).

Run inside the benchmark venv (``bench-results/venv``):
    PYWA_PORT=... PYWA_GRAPH_URL=http://127.0.0.1:PORT PYWA_APP_SECRET=... python app.py

pywa hard-codes ``https://graph.facebook.com/v{version}`` as its httpx session's base URL (see
``pywa.api.GraphAPI.__init__``) and offers no option for it, so the base URL is reset on the
httpx client it was given after construction: a public httpx attribute, no pywa code patched.
pywa's FastAPI route answers 200 and then runs its handlers as a Starlette background task, on
the same connection before it reads the next request; nothing is kept durable: a crash (or a
stop) loses every update that was answered 200 but not yet handled.
"""

from __future__ import annotations

import logging
import os

import httpx
import uvicorn
from fastapi import FastAPI
from pywa_async import WhatsApp, filters, types
from pywa_async.utils import UserIdentifier

PHONE_ID = os.environ.get("PYWA_PHONE_ID", "100000000000001")
GRAPH_URL = os.environ["PYWA_GRAPH_URL"].rstrip("/")
API_VERSION = os.environ.get("PYWA_API_VERSION", "23.0")

# Handler failures (e.g. a Graph call that timed out) are logged by pywa; make them visible.
logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

app = FastAPI()
# What pywa_async builds by default (httpx.AsyncClient() with its default limits); passed in only
# so that its base URL can be pointed at the mock below.
session = httpx.AsyncClient()
wa = WhatsApp(
    phone_id=PHONE_ID,
    token=os.environ.get("PYWA_TOKEN", "bench-token"),
    session=session,
    server=app,
    webhook_endpoint="/webhook",
    verify_token=os.environ.get("PYWA_VERIFY_TOKEN", "bench-verify"),
    app_secret=os.environ["PYWA_APP_SECRET"],
    validate_updates=True,
    api_version=API_VERSION,
    # Reply to the phone number (wa_id) like Hiker does, not to the business-scoped id.
    user_identifier_priority=(
        UserIdentifier.WA_ID,
        UserIdentifier.BSUID,
        UserIdentifier.PARENT_BSUID,
    ),
)
# The only way to aim pywa at another Graph root (no base-URL option in WhatsApp()).
session.base_url = httpx.URL(f"{GRAPH_URL}/v{API_VERSION}")


@wa.on_message(filters.text)
async def hello(_: WhatsApp, message: types.Message) -> None:
    if (message.text or "").strip().lower() == "hello":
        await message.reply_text("hello to you too", quote=False)


if __name__ == "__main__":
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["PYWA_PORT"]),
        log_level=os.environ.get("PYWA_LOG_LEVEL", "warning"),
        access_log=False,
    )
    logging.shutdown()
