"""
Unit tests of what the engines' supervisor samples of its host (``tasks/remote/engines/host_sample.py``):
nvidia-smi's answer read without waiting for it (a stand-in ``nvidia-smi`` on the PATH), and
its lines parsed into GPUs.
"""

import os
import select
import time

from tasks.remote.engines import host_sample
from tests.waiting import wait_until

ANSWER = ("0, GPU-00000000-1d2e, NVIDIA H200, 143771, 1024, 37\n"
          "1, GPU-00000001-1d2e, NVIDIA H200, 143771, [N/A], [N/A]\n")


def stand_in(folder, body):
    """An executable ``nvidia-smi`` in *folder* that runs the shell *body*."""
    path = folder / "nvidia-smi"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def answered(query, timeout=10):
    """Read *query*'s answer as the supervisor does: when its pipe is readable."""
    def ended():
        if query.fd is not None and select.select([query.fd], [], [], 0.1)[0]:
            query.read()
        return query.fd is None
    wait_until(ended, timeout, "nvidia-smi's whole answer", interval=0)
    return query.gpus


def test_each_gpu_is_read_with_its_memory_in_bytes_and_what_it_does_not_say_as_0():
    assert host_sample.gpus(ANSWER + "a line of another shape\n") == [
        {"index": "0", "uuid": "GPU-00000000-1d2e", "name": "NVIDIA H200",
         "memory_total": 143771 << 20, "memory_used": 1024 << 20, "percent": 37},
        {"index": "1", "uuid": "GPU-00000001-1d2e", "name": "NVIDIA H200",
         "memory_total": 143771 << 20, "memory_used": 0, "percent": 0}]


def test_nvidia_smi_is_asked_the_one_query_and_read_without_waiting(tmp_path, monkeypatch):
    stand_in(tmp_path, f'[ "$*" = "{" ".join(host_sample.GPU_QUERY)}" ] || exit 2\nprintf \'{ANSWER}\'')
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    query = host_sample.GpuQuery()
    query.start()
    pid = query.pid
    assert [gpu["index"] for gpu in answered(query)] == ["0", "1"]
    assert os.waitpid(pid, 0)[1] == 0  # it was asked what it answers (else: exit 2)


def test_a_query_that_hangs_is_ended_and_the_last_answer_kept(tmp_path, monkeypatch):
    stand_in(tmp_path, "exec sleep 60")
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(host_sample, "QUERY_TIMEOUT", 0.2)
    query = host_sample.GpuQuery()
    query.gpus = ["the last answer"]
    query.start()
    pid, began = query.pid, query.began
    wait_until(lambda: query.overdue() or query.fd is None, 10, "the hanging query ended as overdue")
    assert time.monotonic() - began > 0.2  # not before its time
    assert query.fd is None and query.gpus == ["the last answer"]
    assert os.waitpid(pid, 0)[1] != 0  # killed


def test_without_nvidia_smi_nothing_is_asked(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    query = host_sample.GpuQuery()
    query.start()
    assert query.fd is None and query.gpus == []
    assert host_sample.sample(query.gpus)["gpus"] == []
