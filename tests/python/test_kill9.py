"""A few rounds of the kill -9 loop (kill9.py; run it by hand for hundreds of rounds):
publishers with confirms and consumers with acks while warren is killed at random moments;
after each restart every confirmed message is there unless acked, none acked in a committed
transaction returns, bodies are intact and in publish order. WARREN_BIN only."""

import os

import pytest

import kill9


@pytest.mark.timeout(120)
def test_three_rounds_of_kill_9_lose_nothing_confirmed():
    binary = os.environ.get("WARREN_BIN")
    if not binary:
        pytest.skip("needs WARREN_BIN: kills and restarts a broker of its own")
    lines = []
    ledger = kill9.run(binary, rounds=3, seed=int(os.environ.get("KILL9_SEED", "7")),
                       out=lines.append)
    assert len(lines) == 3, lines
    # The rounds did real work: messages were confirmed and acked both ways.
    assert len(ledger.confirmed) > 50, lines
    assert ledger.tx_acked, lines
