"""The api's media keeper never holds a message's record back for its medium: an expired id or a
store that fails is logged, and nothing is recorded for the medium."""

from __future__ import annotations

from typing import Any, cast

import pytest

from hiker.api.db.media import MediaRecords
from hiker.api.history import KeptMedium
from hiker.api.media import MediaKeeper
from hiker.core.contracts import MessageReceived
from hiker.core.graph_media import GraphMedia
from hiker.core.media import MediaExpired


class Source:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def fetch(self, phone_number_id: str, media_id: str, sha256: str | None) -> bytes:
        raise self.error


class Records:
    def __init__(self) -> None:
        self.added: list[KeptMedium] = []

    async def add(self, kept: KeptMedium) -> None:
        self.added.append(kept)


def photo() -> MessageReceived:
    return MessageReceived(
        wamid="wamid.P1",
        phone_number_id="100000000000001",
        user="15550008001",
        message_type="image",
        timestamp=1,
        received_at=1.0,
        raw={"type": "image", "image": {"id": "777", "mime_type": "image/jpeg"}},
    )


@pytest.mark.parametrize("error", [MediaExpired("media 777: gone"), OSError("store away")])
async def test_a_medium_that_cannot_be_had_is_logged_and_not_recorded(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    records = Records()
    keeper = MediaKeeper(
        cast(GraphMedia, Source(error)), cast(MediaRecords, records), retention_days=None
    )

    await keeper.keep(photo())

    assert records.added == []
    assert any("inbound media not kept" in r.getMessage() for r in caplog.records)


async def test_a_message_without_a_medium_is_left_alone() -> None:
    records = Records()
    source: Any = Source(AssertionError("not asked"))
    keeper = MediaKeeper(source, cast(MediaRecords, records), retention_days=None)
    text = photo().model_copy(update={"message_type": "text", "raw": {"type": "text"}})

    await keeper.keep(text)

    assert records.added == []
