"""Peak memory of a block: it sees what the block allocated, not what was in use before."""

from __future__ import annotations

import sys

import pytest
import torch

from ddrepro.memory import PeakMemory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")


def test_a_block_that_touches_200_mib_peaks_at_least_that_much_above_its_start():
    before = torch.ones(32 * 2**20 // 4)  # 32 MiB in use before the block: not counted
    with PeakMemory("cpu") as peak:
        block = torch.ones(200 * 2**20 // 4)  # 200 MiB, written, so resident
        del block
    assert 180 <= peak.mib < 400, peak.mib
    assert peak.mib == peak.rss_mib and "resident" in peak.how
    del before


def test_a_block_that_allocates_nothing_peaks_near_zero():
    with PeakMemory("cpu") as peak:
        total = sum(range(1000))
    assert total and peak.mib < 20, peak.mib
