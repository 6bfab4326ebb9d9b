"""Run the hub's Docker API filter: ``python -m hubfleet_spawner.docker_filter --help``."""

import argparse
import asyncio
import logging
import os
import signal
import sys

from .proxy import DockerFilter
from .rules import Policy, PolicyError


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hubfleet_spawner.docker_filter", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="the policy, a JSON file (written by the jupyterhub role)")
    source.add_argument("--policy", help="the policy as a JSON string")
    parser.add_argument("--listen", required=True, help="the Unix socket the hub connects to")
    parser.add_argument("--upstream", default="/var/run/docker.sock", help="the engine's socket")
    parser.add_argument("--mode", default="0660", help="permissions of the listening socket (octal)")
    parser.add_argument("--group", type=int, default=None, help="group id of the listening socket")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def run(args):
    if args.config:
        with open(args.config) as f:
            policy = Policy.from_json(f.read())
    else:
        policy = Policy.from_json(args.policy)
    proxy = DockerFilter(policy, args.upstream)
    server = await proxy.serve(args.listen, int(args.mode, 8), args.group)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    logging.getLogger("hubfleet.docker_filter").info(
        "stopping: %d requests allowed, %d refused", proxy.allowed, proxy.refused)
    try:
        os.unlink(args.listen)
    except OSError:
        pass


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        asyncio.run(run(args))
    except (PolicyError, OSError) as e:
        sys.exit("hubfleet docker filter: %s" % e)


if __name__ == "__main__":
    main()
