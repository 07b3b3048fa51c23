"""Media downloaded through Graph's media flow (the Graph mock), kept once in a folder or in an
S3-compatible server (moto's, started here), and the clear errors a bot gets when it cannot."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import SecretStr

from hiker.core.graph_media import GraphMedia
from hiker.core.media import (
    MediaExpired,
    MediaMismatch,
    MediaStore,
    MediaTooLarge,
    MediaUnavailable,
)
from hiker.core.retrying import Backoff
from hiker.core.settings import AccessTokens, GraphMockSettings, load_settings
from hiker.graphmock.app import create_app
from hiker.testing.inbound import sha256_of
from tests.support import free_port

NUMBER = "100000000000001"
TOKEN = "media-token"
PHOTO = b"\x89PNG\r\n" + bytes(range(256)) * 8


class Graph:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def upload(self, data: bytes, mime_type: str = "image/png") -> str:
        form = aiohttp.FormData()
        form.add_field("messaging_product", "whatsapp")
        form.add_field("type", mime_type)
        form.add_field("file", data, filename="photo.png", content_type=mime_type)
        async with self.session.post(
            self.server.make_url(f"/v23.0/{NUMBER}/media"),
            data=form,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["id"])

    async def mock(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, self.server.make_url(path), json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def paths(self) -> list[str]:
        return [r["path"] for r in await self.mock("GET", "/_mock/requests")]

    def media(
        self, store: MediaStore, *, max_bytes: int = 1 << 20, token: str = TOKEN
    ) -> GraphMedia:
        return GraphMedia(
            session=lambda: self.session,
            base_url=str(self.server.make_url("/")),
            api_version="v23.0",
            tokens=AccessTokens({NUMBER: SecretStr(token)}, None),
            store=store,
            max_bytes=max_bytes,
            backoff=lambda: Backoff(first=0.001, most=0.005),
        )


@pytest.fixture
async def graph() -> AsyncIterator[Graph]:
    settings = load_settings(GraphMockSettings, {"HIKER_ACCESS_TOKENS": f"{NUMBER}={TOKEN}"})
    async with TestServer(create_app(settings)) as server, aiohttp.ClientSession() as session:
        yield Graph(server, session)


async def test_a_medium_is_downloaded_through_graph_and_kept_once_by_its_digest(
    graph: Graph, tmp_path: Path
) -> None:
    media_id = await graph.upload(PHOTO)
    media = graph.media(MediaStore.from_url((tmp_path / "media").as_uri()))

    assert await media.fetch(NUMBER, media_id, sha256_of(PHOTO)) == PHOTO

    digest = hashlib.sha256(PHOTO).hexdigest()
    assert (tmp_path / "media" / "sha256" / digest).read_bytes() == PHOTO
    paths = await graph.paths()
    assert f"/v23.0/{media_id}" in paths
    assert any(p.startswith("/whatsapp_business/attachments/") for p in paths)
    # Asked again (a redelivery, another handler): the store answers, Graph is not called.
    assert await media.fetch(NUMBER, media_id, sha256_of(PHOTO)) == PHOTO
    assert await graph.paths() == paths


async def test_an_expired_media_id_raises_media_expired(graph: Graph, tmp_path: Path) -> None:
    media_id = await graph.upload(PHOTO)
    await graph.mock("POST", f"/_mock/media/{media_id}/expire")

    with pytest.raises(MediaExpired, match=f"media {media_id}: Graph no longer has it"):
        await graph.media(MediaStore.from_url(tmp_path.as_uri())).fetch(NUMBER, media_id, None)


async def test_a_medium_over_the_limit_is_refused_before_its_bytes_are_read(
    graph: Graph, tmp_path: Path
) -> None:
    media_id = await graph.upload(PHOTO)
    media = graph.media(MediaStore.from_url(tmp_path.as_uri()), max_bytes=len(PHOTO) - 1)

    with pytest.raises(MediaTooLarge, match="over HIKER_MEDIA_MAX_BYTES"):
        await media.fetch(NUMBER, media_id, None)
    assert not any(p.startswith("/whatsapp_business/") for p in await graph.paths())
    assert not (tmp_path / "sha256").exists()


async def test_graphs_passing_failures_are_retried_and_lasting_ones_reported(
    graph: Graph, tmp_path: Path
) -> None:
    media_id = await graph.upload(PHOTO)
    media = graph.media(MediaStore.from_url(tmp_path.as_uri()))
    passing = [{"status": 500}, {"status": 429, "code": 4}]
    await graph.mock("POST", "/_mock/faults", {"to": "media", "responses": passing})

    assert await media.fetch(NUMBER, media_id, None) == PHOTO

    lasting = [{"status": 503}] * media.attempts
    await graph.mock("POST", "/_mock/faults", {"to": "media", "responses": lasting})
    other = await graph.upload(b"another photo")
    with pytest.raises(
        MediaUnavailable, match=re.escape("Graph kept failing (HTTP 503) after 4 attempts")
    ):
        await media.fetch(NUMBER, other, None)


async def test_bytes_that_are_not_those_announced_are_refused(graph: Graph, tmp_path: Path) -> None:
    media_id = await graph.upload(PHOTO)
    media = graph.media(MediaStore.from_url(tmp_path.as_uri()))

    with pytest.raises(MediaMismatch, match="sha256"):
        await media.fetch(NUMBER, media_id, sha256_of(b"something else"))
    assert not (tmp_path / "sha256").exists()


async def test_a_refused_token_says_so_without_showing_it(graph: Graph, tmp_path: Path) -> None:
    media_id = await graph.upload(PHOTO)
    media = graph.media(MediaStore.from_url(tmp_path.as_uri()), token="wrong-token")

    with pytest.raises(MediaUnavailable, match="HTTP 401, Graph error 190") as raised:
        await media.fetch(NUMBER, media_id, None)
    assert "wrong-token" not in str(raised.value)


async def test_a_download_longer_than_announced_stops_at_the_limit(tmp_path: Path) -> None:
    """A URL that streams more than the limit (no size announced) is cut off, not read on."""
    sent: list[int] = []

    async def describe(request: web.Request) -> web.Response:
        return web.json_response({"url": str(request.url.with_path("/blob")), "id": "7"})

    async def blob(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(64):
            await response.write(b"x" * 16384)
            sent.append(16384)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v23.0/7", describe)
    app.router.add_get("/blob", blob)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        media = Graph(server, session).media(
            MediaStore.from_url(tmp_path.as_uri()), max_bytes=1 << 16
        )
        with pytest.raises(MediaTooLarge, match="more bytes than HIKER_MEDIA_MAX_BYTES"):
            await media.fetch(NUMBER, "7", None)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server, on a port of its own, for this module's tests."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError("moto_server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


async def test_a_medium_is_kept_in_an_s3_bucket(graph: Graph, s3_endpoint: str) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket="hiker-media")
    store = MediaStore.from_url(
        "s3://hiker-media/inbound",
        config={
            "endpoint": s3_endpoint,
            "access_key_id": "test",
            "secret_access_key": "test",
            "region": "us-east-1",
        },
        client_options={"allow_http": True},
    )
    media_id = await graph.upload(PHOTO)

    assert await graph.media(store).fetch(NUMBER, media_id, sha256_of(PHOTO)) == PHOTO

    digest = hashlib.sha256(PHOTO).hexdigest()
    kept = s3.get_object(Bucket="hiker-media", Key=f"inbound/sha256/{digest}")
    assert kept["Body"].read() == PHOTO
    assert await store.get(digest) == PHOTO
