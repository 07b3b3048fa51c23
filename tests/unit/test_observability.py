from __future__ import annotations

import json
import logging

import pytest

from hiker.core.observability import configure_logging, mask_phone, mask_text


def test_mask_phone_keeps_only_the_last_four_digits() -> None:
    assert mask_phone("15551234567") == "*******4567"
    assert mask_phone("123") == "***"


def test_mask_text_masks_numbers_in_free_text() -> None:
    assert mask_text("from 15551234567 at 12:00") == "from *******4567 at 12:00"
    assert "15551234567" not in mask_text("to +15551234567.")


def test_log_lines_are_json_with_phone_numbers_masked(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO")
    logging.getLogger("hiker.test").info(
        "message from %s", "15551234567", extra={"user": "15559876543", "wamid": "wamid.X"}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["service"] == "test-service"
    assert record["level"] == "INFO"
    assert record["event"] == "message from *******4567"
    assert record["user"] == "*******6543"
    assert record["wamid"] == "wamid.X"
    assert "15551234567" not in line
    assert "15559876543" not in line


def test_tracebacks_and_nested_extras_are_masked_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test-service", "INFO")
    try:
        {"15551112222": 1}["15553334444"]
    except KeyError:
        logging.getLogger("hiker.test").exception(
            "send parked",
            extra={
                "graph_error": {"message": "recipient 15557778888 is not valid", "code": 131026},
                "detail": "user +15556667777 blocked the business",
                "codes": ["15559990000"],
                "phone_number_id": "100000000000001",
            },
        )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    for number in ("15553334444", "15557778888", "15556667777", "15559990000"):
        assert number not in line
    assert "KeyError" in record["exc_info"]
    assert record["graph_error"]["code"] == 131026
    assert record["phone_number_id"] == "100000000000001"  # the business's id stays readable
