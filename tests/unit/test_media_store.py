"""The media store named by HIKER_MEDIA_STORE: opened by URL, keyed by digest, refused clearly."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from hiker.core.graph_media import graph_media
from hiker.core.media import MediaStore, hex_digest
from hiker.core.settings import ConfigError, ConversationSettings, load_settings


def test_metas_digest_is_read_in_either_encoding() -> None:
    digest = hashlib.sha256(b"photo").digest()
    assert hex_digest(base64.b64encode(digest).decode()) == digest.hex()  # webhooks
    assert hex_digest(digest.hex().upper()) == digest.hex()  # Graph's media endpoint
    assert hex_digest("x") is None
    assert hex_digest(base64.b64encode(b"short").decode()) is None
    assert hex_digest(None) is None


async def test_the_same_bytes_are_kept_once_under_their_digest(tmp_path: Path) -> None:
    store = MediaStore.from_url((tmp_path / "deep" / "folder").as_uri())
    first = await store.put(b"photo")
    second = await store.put(b"photo")

    assert first == second == hashlib.sha256(b"photo").hexdigest()
    assert [p.name for p in (tmp_path / "deep" / "folder" / "sha256").iterdir()] == [first]
    assert await store.size(first) == 5
    assert await store.get("0" * 64) is None


def test_a_store_that_cannot_be_opened_refuses_the_start_naming_the_variable(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for url in ("nosuch://bucket", (blocker / "media").as_uri()):
        settings = load_settings(ConversationSettings, {"HIKER_MEDIA_STORE": url})
        with pytest.raises(ConfigError, match=r"^HIKER_MEDIA_STORE is invalid: cannot open"):
            graph_media(settings, lambda: pytest.fail("no session is made at start"))
