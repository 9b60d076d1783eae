"""The last lines of a session's log a local platform puts into a failure reason."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from broker.platforms.uploads import log_tail


def test_only_the_end_of_a_huge_log_is_read(tmp_path: Path):
    log = tmp_path / "run.err"
    with log.open("wb") as handle:
        handle.truncate(64 * 2**20)  # sparse: 64 MiB a program wrote without a line break
        handle.seek(0, 2)
        handle.write(b"\nstarting\nlistening on port 8888\n")
    tracemalloc.start()
    try:
        tail = log_tail(log)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tail == "starting | listening on port 8888"
    assert peak < 4 * 2**20


def test_a_long_last_line_is_kept_to_its_end(tmp_path: Path):
    log = tmp_path / "run.err"
    log.write_bytes(b"x" * 200_000 + b"END\n")
    assert log_tail(log).endswith("xxxEND")


def test_tokens_and_authorization_headers_are_masked(tmp_path: Path):
    log = tmp_path / "run.err"
    log.write_text(
        "[I ServerApp] Jupyter Server is running at:\n"
        "[I ServerApp] http://127.0.0.1:8888/lab?token=4f9c2d1e8a&next=/tree\n"
        "GET /api Authorization: Bearer eyJhbGciOi.secret\n"
        "fetching https://user:hunter2@store.example.org/x?access_token=abc\n",
        encoding="utf-8",
    )
    tail = log_tail(log)
    for secret in ("4f9c2d1e8a", "eyJhbGciOi", "hunter2", "access_token=abc"):
        assert secret not in tail
    assert "lab?token=***&next=/tree" in tail
    assert "Authorization: ***" in tail
    assert "https://***@store.example.org" in tail


def test_a_missing_log_has_no_tail(tmp_path: Path):
    assert log_tail(tmp_path / "absent.log") == ""
