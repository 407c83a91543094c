"""Regression golden of the fixture run, pinned exactly. The whole bundled sample's golden and
quality floor run with the integration tests (tests/integration/test_golden_sample.py): a whole
run of 166k events does not fit the unit tests' one-minute budget under coverage."""

from __future__ import annotations

from tests import goldens

MESSAGE = "the {} run changed; if intended, run `make golden` and commit the new golden:\n"


def test_fixture_run_matches_the_golden() -> None:
    """Any change to any signal or score fails here; `make golden` rewrites it on purpose."""
    golden = goldens.load()["fixtures"]
    now = goldens.compute("fixtures")
    assert now == golden, MESSAGE.format("fixtures") + goldens.side_by_side(golden, now)


def test_golden_pins_real_scores() -> None:
    """The golden is not vacuous: every stage was scored on thousands of outcomes."""
    g = goldens.load()["fixtures"]
    assert g["rejected"] == 0 and g["events"] > 20_000
    assert set(g["stages"]) == {"microstructure", "flow", "counts"}
    for block in [g["ensemble"], *g["stages"].values()]:
        assert block["n_scored"] > 2_000
        assert 0.0 < block["log_loss"] < 1.0
