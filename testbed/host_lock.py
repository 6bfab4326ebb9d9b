"""The machine's host lock (/tmp/hubfleet-host.lock) for suites that touch the host engine.

CI and the working rules run host suites as ``flock /tmp/hubfleet-host.lock pytest ...``;
``flock`` keeps the lock open in its children, and a second lock on a new descriptor would
wait for ourselves forever. So a test takes the lock only when no caller holds it already.
"""

import contextlib
import fcntl
import os

HOST_LOCK = "/tmp/hubfleet-host.lock"


def held_by_caller():
    """Whether this process inherited an open descriptor of the host lock."""
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) == HOST_LOCK:
                return True
        except OSError:
            pass
    return False


@contextlib.contextmanager
def host_lock():
    """Hold the host lock for the block, unless the caller holds it already."""
    if held_by_caller():
        yield
        return
    with open(HOST_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
