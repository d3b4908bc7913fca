"""The ClickHouse parameter quoting shared by both engines."""

from __future__ import annotations

import pytest

from bento.adapters.clickhouse._sql import render
from bento.application.errors import InvalidTextError


def test_a_lone_surrogate_in_a_parameter_is_a_typed_error() -> None:
    with pytest.raises(InvalidTextError) as caught:
        render("SELECT 1 WHERE s = %(s)s", {"s": "x\ud800" + "y" * 500})
    assert len(str(caught.value)) < 250  # the untrusted value is quoted bounded


def test_real_text_is_quoted() -> None:
    assert render("SELECT %(s)s", {"s": "é'✓"}) == "SELECT 'é\\'✓'"
