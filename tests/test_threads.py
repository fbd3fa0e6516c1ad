"""Threads that make way for other processes: the rule, and the policy on real /proc figures."""

import subprocess
import sys
import time

import pytest
import torch

from engine import threads
from engine.threads import Threads, free_cores


def test_free_cores_leaves_the_cores_others_keep_busy():
    assert free_cores(2, 0.0) == 2
    assert free_cores(2, 0.3) == 2  # a light process takes no core
    assert free_cores(2, 1.0) == 1
    assert free_cores(2, 3.5) == 1  # never below one
    assert free_cores(16, 6.2) == 10


def test_a_fixed_count_is_kept_whatever_else_runs():
    before = torch.get_num_threads()
    try:
        t = Threads(fixed=1)
        assert torch.get_num_threads() == 1 and t.adjust() == 1 and not t.enabled
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(threads.cores() < 2 or threads._busy_seconds() is None, reason="needs two cores and /proc")
def test_threads_drop_while_another_process_spins_and_come_back(monkeypatch):
    monkeypatch.setattr(threads, "MIN_INTERVAL", 1.0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads.cores())  # an earlier test may have left fewer: the changes below start from all
        t = Threads()
        time.sleep(1.2)
        idle = t.adjust()
        if idle < t.total:
            pytest.skip("the machine is busy with other work already")
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.5)
            assert t.adjust() == t.total - 1 and torch.get_num_threads() == t.total - 1
        finally:
            spin.kill()
            spin.wait()
        time.sleep(1.5)
        assert t.adjust() == t.total
        assert [n for n, _ in t.changes] == [t.total - 1, t.total]
    finally:
        torch.set_num_threads(before)
