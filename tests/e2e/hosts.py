"""Test hosts on one machine: worker hosts in network namespaces, cabled to this namespace (the
console host, where PostgreSQL, the broker and the test itself run) through one bridge, so a test
can pull one host's cable mid-step and plug it back.

A worker host is a network namespace whose processes also get their own hostname (a UTS
namespace), with one interface, eth0 at 10.231.N.11, .12 ... on a /24. Its cable is a veth pair
whose other end is a port of the test's bridge, which holds the console's address 10.231.N.1.
PostgreSQL and the broker listen on 127.0.0.1 only, so the console relays their ports from its
bridge address (a small TCP relay in a thread of the test process).

Pulling a cable sets the bridge's end of that host's veth down: from then on every packet either
way is lost without an error, as with a cut cable or a dead switch port, and open TCP connections
stay open to carry on once the cable is back (nothing is reset, nobody is told).

Everything is named fdnet<pid>-..., so what a killed test run left behind is recognised (its pid
is gone) and removed by the next one. Nothing is touched but the test's own bridge, veths and
namespaces: the root namespace gets no route except the bridge's own subnet.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass

import pytest

PREFIX = "fdnet"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=10)


def network_namespaces_or_skip() -> None:
    """Skip (or with CI=true fail) when this process cannot build namespaces: not root, no `ip`."""
    problem = None
    if os.geteuid() != 0:
        problem = "network namespaces need root (CI runs as root)"
    elif not shutil.which("ip") or not shutil.which("unshare") or not shutil.which("hostname"):
        problem = "network namespaces need iproute2's ip, util-linux's unshare and hostname"
    else:
        probe = f"{PREFIX}{os.getpid()}-probe"
        made = ip("netns", "add", probe, check=False)
        if made.returncode:
            problem = f"`ip netns add` failed: {made.stderr.strip()}"
        else:
            ip("netns", "del", probe, check=False)
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)


def remove_leftovers() -> None:
    """Remove the namespaces and links of test runs whose process is gone."""
    names = set(re.findall(rf"^({PREFIX}\d+-\S+)", ip("netns", "list").stdout, re.M))
    links = set(re.findall(rf"^\d+: ({PREFIX}\d+-[^:@\s]+)", ip("-o", "link", "show").stdout, re.M))
    for name in sorted(names | links):
        pid = int(re.match(rf"{PREFIX}(\d+)-", name).group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        if name in links:
            ip("link", "del", name, check=False)
        if name in names:
            ip("netns", "del", name, check=False)


def _free_subnet() -> ipaddress.IPv4Network:
    used = [ipaddress.ip_interface(address).network
            for address in re.findall(r"inet (\S+)", ip("-4", "-o", "addr", "show").stdout)]
    for third in [*range(os.getpid() % 200 + 20, 250), *range(20, 250)]:
        subnet = ipaddress.ip_network(f"10.231.{third}.0/24")
        if not any(subnet.overlaps(other) for other in used):
            return subnet
    raise RuntimeError("no free 10.231.x.0/24 subnet for the test hosts")


@dataclass
class Host:
    name: str  # the namespace, the root end of its veth and its hostname
    address: str

    def command(self, *argv: str) -> list[str]:
        """`argv` run on this host: in its network namespace, under its own hostname."""
        return ["ip", "netns", "exec", self.name, "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', self.name, *argv]


class TestHosts:
    """A console (this namespace) on a bridge, and worker hosts cabled to it."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self):
        self.tag = f"{PREFIX}{os.getpid()}"
        subnet = _free_subnet()
        self.console = str(subnet.network_address + 1)
        self._prefix = subnet.prefixlen
        self._next_address = subnet.network_address + 11
        self.bridge = f"{self.tag}-br"
        self.hosts: dict[str, Host] = {}
        self.relay = Relay(self.console)

    def build(self) -> None:
        """The bridge with the console's address (call inside the try whose finally calls remove)."""
        remove_leftovers()
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.console}/{self._prefix}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, short_name: str) -> Host:
        host = Host(f"{self.tag}-{short_name}", str(self._next_address))
        self._next_address += 1
        self.hosts[short_name] = host
        ip("netns", "add", host.name)
        ip("link", "add", host.name, "type", "veth", "peer", "name", "eth0", "netns", host.name)
        ip("link", "set", host.name, "master", self.bridge)
        ip("link", "set", host.name, "up")
        inside = ("netns", "exec", host.name, "ip")
        ip(*inside, "addr", "add", f"{host.address}/{self._prefix}", "dev", "eth0")
        ip(*inside, "link", "set", "eth0", "up")
        ip(*inside, "link", "set", "lo", "up")
        return host

    def pull_cable(self, host: Host) -> None:
        ip("link", "set", host.name, "down")

    def plug_cable(self, host: Host) -> None:
        ip("link", "set", host.name, "up")

    def remove(self) -> None:
        self.relay.stop()
        for host in self.hosts.values():
            ip("link", "del", host.name, check=False)  # both ends of the veth
            ip("netns", "del", host.name, check=False)
        ip("link", "del", self.bridge, check=False)


class Relay:
    """TCP relays on the console's address to services that listen on loopback only."""

    def __init__(self, listen_host: str):
        self.listen_host = listen_host
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="console-relay", daemon=True)
        self._thread.start()

    def forward(self, port: int, target: tuple[str, int]) -> None:
        """Relay `listen_host:port` to `target`."""

        async def serve():
            return await asyncio.start_server(lambda r, w: self._connect(r, w, target), self.listen_host, port)

        self._servers.append(asyncio.run_coroutine_threadsafe(serve(), self._loop).result(timeout=5))

    async def _connect(self, client_reader, client_writer, target) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    @staticmethod
    async def _pipe(reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    def stop(self) -> None:
        async def close():
            for server in self._servers:
                server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
