"""Keep dockerd running on a host without systemd: start it, and start it again when it
exits (a crash, or a restart after a daemon.json change), pausing briefly so a daemon that
cannot start does not spin.

The supervisor opens the engine's API socket (/var/run/docker.sock) once and hands it to
every dockerd it starts (``-H fd://``), as systemd's docker.socket does: the socket stays
the same file across daemon restarts, so a container that mounts it (the hub's Docker API
filter) still reaches the engine after one. A dockerd that makes the socket itself replaces
the file on every start, and a mount of the old file then refuses every connection.

Hooks. After every start of dockerd the supervisor runs each executable file in
/etc/hubfleet/dockerd-started.d/ (in name order, one after the other, in the background,
output to the log): the equivalent of a systemd unit's ExecStartPost= or of a unit
WantedBy=docker.service on hosts without systemd. A hook must wait for the engine itself
(it starts as dockerd does). The jupyterhub role puts one there that re-applies the user
servers' network isolation.

    hubfleet-dockerd-supervise [LOG]        (default /var/log/dockerd.log)
"""

import grp
import os
import socket
import subprocess
import sys
import threading
import time

SOCKET = "/var/run/docker.sock"
HOOKS = "/etc/hubfleet/dockerd-started.d"
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


def run_hooks(log):
    """Each executable in HOOKS, in name order, output appended to the log."""
    try:
        names = sorted(os.listdir(HOOKS))
    except FileNotFoundError:
        return
    for name in names:
        path = os.path.join(HOOKS, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        with open(log, "a") as out:
            status = subprocess.run([path], stdin=subprocess.DEVNULL, stdout=out, stderr=out, check=False).returncode
        log_line(log, "hook %s exited with %d" % (name, status))


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
    threading.Thread(target=run_hooks, args=(log,), daemon=True).start()
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
