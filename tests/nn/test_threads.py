import os

import torch

from celltrack.nn import threads


def test_an_explicit_count_wins_and_the_old_count_comes_back():
    before = torch.get_num_threads()
    with threads.torch_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_a_busy_machine_gets_one_thread_and_an_idle_one_all_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(os, "getloadavg", lambda: (6.0, 6.0, 6.0))
        assert threads.choose_threads() == 1  # others keep both cores busy
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert threads.choose_threads() == 2
        torch.set_num_threads(1)  # a process that chose one thread keeps it
        assert threads.choose_threads() == 1
    finally:
        torch.set_num_threads(before)
