"""What a user is told about a server that stopped by itself (pure formatting)."""

import pytest

from hubfleet_spawner.errors import stopped_reason


def test_out_of_memory_names_the_limit():
    reason = stopped_reason({"OOMKilled": True, "ExitCode": 137}, 512 << 20)
    assert reason.startswith("Your server ran out of memory")
    assert "limit of 512M" in reason
    assert "SIGKILL" not in reason


def test_out_of_memory_without_a_limit_says_no_number():
    assert "its whole limit and was stopped" in stopped_reason({"OOMKilled": True, "ExitCode": 137})


@pytest.mark.parametrize(
    "code, words",
    [(137, "SIGKILL (exit code 137)"), (139, "SIGSEGV (exit code 139)"), (143, "SIGTERM (exit code 143)")],
)
def test_a_signal_is_named(code, words):
    assert words in stopped_reason({"ExitCode": code})


def test_an_error_exit_gives_the_code():
    assert "exit code 3" in stopped_reason({"ExitCode": 3})


def test_a_clean_exit_says_it_stopped_by_itself():
    assert "stopped by itself" in stopped_reason({"ExitCode": 0})


def test_dockers_own_error_is_passed_on():
    assert "Docker reported: no space left." in stopped_reason({"ExitCode": 1, "Error": "no space left"})


def test_only_the_last_non_blank_log_lines_are_kept():
    logs = "\n".join("line %d" % i for i in range(30)) + "\n\n"
    reason = stopped_reason({"ExitCode": 1}, log_tail=logs, log_lines=3)
    assert reason.endswith("Last log lines:\nline 27\nline 28\nline 29")


@pytest.mark.parametrize("limit, text", [(1 << 30, "1G"), (300 << 20, "300M"), (1536 << 20, "1536M"), (1000, "1000 bytes")])
def test_limits_are_written_as_operators_write_them(limit, text):
    assert "limit of %s" % text in stopped_reason({"OOMKilled": True}, limit)
