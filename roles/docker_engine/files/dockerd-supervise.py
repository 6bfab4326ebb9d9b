"""Keep dockerd running on a host without systemd: start it, and start it again when it
exits (a crash, or a restart after a daemon.json change), pausing briefly so a daemon that
cannot start does not spin.

The supervisor opens the engine's API socket (/var/run/docker.sock) once and hands it to
every dockerd it starts (``-H fd://``), as systemd's docker.socket does: the socket stays
the same file across daemon restarts, so a container that mounts it (the hub's Docker API
filter) still reaches the engine after one. A dockerd that makes the socket itself replaces
the file on every start, and a mount of the old file then refuses every connection.

    hubfleet-dockerd-supervise [LOG]        (default /var/log/dockerd.log)
"""

import grp
import os
import socket
import sys
import time

SOCKET = "/var/run/docker.sock"
LISTEN_FDS_START = 3  # the first file descriptor of socket activation (sd_listen_fds)


def log_line(log, message):
    with open(log, "a") as f:
        f.write("%s hubfleet-dockerd-supervise: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message))


def listen(path):
    """The API socket, mode 0660, group docker when it exists (as the engine makes it)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(old_umask)
    try:
        gid = grp.getgrnam("docker").gr_gid
    except KeyError:
        gid = 0
    os.chown(path, 0, gid)
    os.chmod(path, 0o660)
    sock.listen(socket.SOMAXCONN)
    return sock


def run_dockerd(sock, log):
    """Start dockerd on the socket; returns its exit status when it ends."""
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(sock.fileno(), LISTEN_FDS_START)
            os.set_inheritable(LISTEN_FDS_START, True)
            out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out, 1)
            os.dup2(out, 2)
            env = dict(os.environ, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
            os.execvpe("dockerd", ["dockerd", "--host", "fd://"], env)
        finally:
            os._exit(127)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def main(argv):
    log = argv[1] if len(argv) > 1 else "/var/log/dockerd.log"
    sock = listen(SOCKET)
    while True:
        log_line(log, "starting dockerd")
        log_line(log, "dockerd exited with %d" % run_dockerd(sock, log))
        time.sleep(2)


if __name__ == "__main__":
    main(sys.argv)
