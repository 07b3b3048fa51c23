"""``hiker api`` with HIKER_MEDIA_STORE: the recorder keeps each inbound medium (through the
Graph mock, into a folder), history items carry it, ``GET /v1/media/{id}`` serves it after
Meta's id expired, a token must be allowed the number, and retention forgets it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from hiker.api.media import KEEPER
from hiker.testing.inbound import sha256_of
from hiker.tools.simulate import image_message, messages_change, webhook_body
from tests.integration.api.conftest import API_TOKEN, start_api
from tests.integration.api.test_api_http import contract_of, eventually, history
from tests.integration.conftest import PHONE_NUMBER_ID, Pipeline, PipelineFactory

pytestmark = pytest.mark.integration

PHOTO = b"\xff\xd8\xff" + b"a photo" * 300
OTHER_READER = "other-reader-0123456789abcdef"
TOKENS = f"{API_TOKEN}:admin, {OTHER_READER}:read@100000000000009"


async def get(pipeline: Pipeline, url: str, token: str) -> tuple[int, str, bytes]:
    headers = {"Authorization": f"Bearer {token}"}
    async with pipeline.session.get(url, headers=headers) as response:
        return response.status, response.content_type, await response.read()


async def test_inbound_media_are_kept_served_and_forgotten_after_retention(
    make_pipeline: PipelineFactory, database_url: str, tmp_path: Path
) -> None:
    pipeline = await make_pipeline(services=("graph", "ingress"))
    store = tmp_path / "media"
    api = await start_api(
        pipeline,
        database_url,
        HIKER_API_TOKENS=TOKENS,
        HIKER_API_TOKEN="",
        HIKER_MEDIA_STORE=store.as_uri(),
        HIKER_MEDIA_RETENTION_DAYS="30",
    )
    contract = await contract_of(pipeline, api)
    user = "15550007001"
    media_id = await pipeline.upload_media(PHOTO)
    photo = image_message(user)
    photo["image"].update(id=media_id, sha256=sha256_of(PHOTO))
    body = webhook_body(messages_change([photo], phone_number_id=PHONE_NUMBER_ID))
    assert await pipeline.post(body) == 200

    async def kept() -> Any:
        page = await history(pipeline, api, user)
        return page if page["data"] and page["data"][0]["media"] else None

    page = await eventually(kept, what="the photo recorded with its medium")
    contract.check("MessagePage", page)
    digest = hashlib.sha256(PHOTO).hexdigest()
    assert page["data"][0]["media"] == {
        "id": media_id,
        "mime_type": "image/jpeg",
        "sha256": digest,
        "size": len(PHOTO),
        "url": f"/v1/media/{media_id}",
    }
    # Meta's id expires; the api still serves the bytes, with their type.
    async with pipeline.session.post(pipeline.url("graph", f"/_mock/media/{media_id}/expire")):
        pass
    served = await get(pipeline, api.url(f"/v1/media/{media_id}"), API_TOKEN)
    assert served == (200, "image/jpeg", PHOTO)
    # A token not allowed this number learns nothing more than a 403; an unknown id is a 404.
    status, _, _ = await get(pipeline, api.url(f"/v1/media/{media_id}"), OTHER_READER)
    assert status == 403
    status, _, _ = await get(pipeline, api.url("/v1/media/123"), API_TOKEN)
    assert status == 404

    keeper = api.server.app[KEEPER]
    assert await keeper.sweep() == 0  # within 30 days
    keeper.retention_days = 1e-9
    assert await keeper.sweep() == 1
    assert not (store / "sha256" / digest).exists()
    status, _, _ = await get(pipeline, api.url(f"/v1/media/{media_id}"), API_TOKEN)
    assert status == 404
    assert (await history(pipeline, api, user))["data"][0]["media"] is None
