"""The scripts the network-isolation tests run inside containers (tests/security, and the
engine drills in tests/faults): a TCP probe and the fake "LAN" host's server.

    container.exec_run(["python3", "-c", PROBE, address, str(port)])   # prints open / blocked ...
    container.exec_run(["python3", "-c", LISTENER, str(port)], detach=True)
    client.containers.run(image, ["python3", "-c", LAN_SERVER, str(port)], detach=True)
"""

# IPv4 or IPv6 (a link-local address with its interface: fe80::1%eth0).
PROBE = (
    "import socket,sys\n"
    "try:\n"
    "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); print('open')\n"
    "except OSError as e:\n"
    "    print('blocked', e)\n"
)

# Resolves a name (through the container's resolver: Docker's embedded DNS on a user
# network); prints the address, or "unresolved" and why.
RESOLVE = (
    "import socket,sys\n"
    "try:\n"
    "    print(socket.gethostbyname(sys.argv[1]))\n"
    "except OSError as e:\n"
    "    print('unresolved', e)\n"
)

# Accepts TCP on a port over IPv4 and IPv6 and closes each connection (a server's other port).
LISTENER = (
    "import socket,sys\n"
    "s=socket.create_server(('::', int(sys.argv[1])), family=socket.AF_INET6, dualstack_ipv6=True)\n"
    "while True: s.accept()[0].close()\n"
)

# Not ``python3 -m http.server``: its HTTPServer calls socket.getfqdn() between bind() and
# listen(), a reverse DNS query that, once the LAN's default route exists, goes to the
# host's resolver and blocks listen() for its timeouts (seen: the first probe refused,
# python3 waiting on 10.255.255.53:53).
LAN_SERVER = (
    "import http.server,socketserver,sys\n"
    "socketserver.TCPServer(('', int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)
