"""tests/hosts_kit.py: two test host sets alive at once never share a slot (prefix and
network), whatever process and pytest worker they come from."""

from __future__ import annotations

import subprocess
import sys

from tests.hosts_kit import claimed_slot


def test_sets_alive_at_once_get_slots_of_their_own_and_a_freed_slot_is_taken_again() -> None:
    with claimed_slot("gw0") as first, claimed_slot("gw0") as second:
        # another process (another run, another worker) started at either slot moves on too
        other = subprocess.run([sys.executable, "-c", "from tests.hosts_kit import claimed_slot\n"
                                "with claimed_slot() as s: print(s)"], capture_output=True, text=True, check=True)
        assert len({first, second, int(other.stdout)}) == 3
    with claimed_slot("gw0") as again:
        assert again == first
