"""`aidline run` (what `make run` calls): Kafka, the four services, demo data, addresses.

Reuses what is already there: a running broker, existing SQLite files. The broker starts in
the background while the services start (they retry Kafka until it is there, with a short
back-off here: `KAFKA_RETRY_MAX_SECONDS`, 2 s unless set). Each service listens on
`<SERVICE>_PORT` when set (as the service itself reads it), else on 8001-8004. A service that
exits is started again, after a pause that doubles with each quick exit (`supervise`). Ctrl-C
or SIGTERM stops the services, and the broker too when this command started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from rich.console import Console

from shared.auth import DEV_SECRET, Role, mint_token

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("AIDLINE_HOME", REPO / ".aidline"))  # as deploy/local/*.sh
SERVICES = {"request": 8001, "allocation": 8002, "delivery": 8003, "projection": 8004}
# While the broker starts beside them, the services retry it after at most this long.
KAFKA_RETRY_MAX_SECONDS = "2"
DEV_IDENTITIES = {
    Role.RECIPIENT: {"sub": "ua-mod"},
    Role.DONOR: {"sub": "pl-mod", "nation": "PL"},
    Role.FORUM: {"sub": "udcg-secretariat"},
    Role.PLANNER: {"sub": "nsatu-j4"},
    Role.HUB: {"sub": "rze-ops", "hub": "PL-RZE"},
    Role.OBSERVER: {"sub": "observer"},
    Role.ADMIN: {"sub": "admin"},
}

console = Console()

# A service that exits is started again after FIRST_RESTART_SECONDS, twice that after each
# further exit, at most MAX_RESTART_SECONDS; one that ran STABLE_SECONDS starts over at the first.
FIRST_RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
STABLE_SECONDS = 60.0


@dataclass
class Supervised:
    """A service process and how to start it again."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes]
    started_at: float
    quick_exits: int = 0
    restart_at: float | None = None


def supervise(services: dict[str, Supervised], now: float, say: Callable[[str], None]) -> None:
    """One look at every service: note one that exited, start one whose pause is over."""
    for service in services.values():
        if service.restart_at is None:
            code = service.process.poll()
            if code is None:
                continue
            if now - service.started_at >= STABLE_SECONDS:
                service.quick_exits = 0
            pause = min(MAX_RESTART_SECONDS, FIRST_RESTART_SECONDS * 2**service.quick_exits)
            service.quick_exits += 1
            service.restart_at = now + pause
            say(f"the {service.name} service exited with {code}; starting it again in {pause:g}s")
        elif now >= service.restart_at:
            service.process, service.started_at = service.start(), now
            service.restart_at = None
            say(f"the {service.name} service started again (pid {service.process.pid})")


@dataclass
class Started:
    services: dict[str, Supervised]
    started_kafka: bool

    @property
    def processes(self) -> dict[str, subprocess.Popen[bytes]]:
        return {name: service.process for name, service in self.services.items()}


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _fail(message: str, fix: str) -> None:
    console.print(f"[bold red]✗ {message}[/]\n  [yellow]fix:[/] {fix}")
    raise typer.Exit(1)


def service_ports(environ: Mapping[str, str] = os.environ) -> dict[str, int]:
    """Each service's port: `<SERVICE>_PORT` if set (the variable the service reads), else
    its default (`SERVICES`)."""
    ports = {}
    for name, default in SERVICES.items():
        value = environ.get(f"{name.upper()}_PORT", "").strip()
        if value and not (value.isdigit() and 0 < int(value) < 65536):
            _fail(f"{name.upper()}_PORT={value!r} is not a port", "a number from 1 to 65535")
        ports[name] = int(value) if value else default
    return ports


@dataclass
class KafkaStart:
    """The broker as `aidline run` found or started it: `up` runs in the background until
    `ready()` waits for it."""

    bootstrap: str
    started: bool
    up: subprocess.Popen[bytes] | None = None

    def ready(self) -> None:
        if self.up is None:
            return
        if self.up.wait() != 0:
            _fail("Kafka did not start (its log tail is above)", "see `deploy/local/kafka.sh logs`")
        self.up = None
        console.print(f"[green]✓[/] Kafka: {self.bootstrap}")


def _start_kafka() -> KafkaStart:
    """Our broker, started in the background if it is not running (`kafka.sh up`)."""
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        console.print(f"[green]✓[/] Kafka: using {bootstrap}")
        return KafkaStart(bootstrap, started=False)
    script = REPO / "deploy" / "local" / "kafka.sh"
    status = subprocess.run([str(script), "status"], capture_output=True, text=True)
    already = status.returncode == 0
    console.print("[cyan]…[/] Kafka: " + ("already running" if already else "starting (KRaft)"))
    bootstrap = "127.0.0.1:" + os.environ.get("KAFKA_PORT", "9092")
    return KafkaStart(bootstrap, not already, subprocess.Popen([str(script), "up"]))


def _start_services(env: dict[str, str]) -> dict[str, Supervised]:
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    def starter(name: str) -> Callable[[], subprocess.Popen[bytes]]:
        def start() -> subprocess.Popen[bytes]:
            with (logs / f"{name}.log").open("ab") as log:
                return subprocess.Popen(
                    [sys.executable, "-m", f"services.{name}"],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # Ctrl-C reaches us; we stop them in order
                )

        return start

    services = {}
    for name in SERVICES:
        start = starter(name)
        services[name] = Supervised(name, start, start(), time.monotonic())
    return services


def _wait_ready(
    processes: dict[str, subprocess.Popen[bytes]], ports: dict[str, int], timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    pending = set(processes)
    with console.status("waiting for the services to be ready…"), httpx.Client(timeout=2) as http:
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                if processes[name].poll() is not None:
                    _fail(f"the {name} service exited", f"see {STATE / 'logs' / (name + '.log')}")
                try:
                    response = http.get(f"http://127.0.0.1:{ports[name]}/readyz")
                    if response.status_code == 200:
                        pending.discard(name)
                        console.print(f"[green]✓[/] {name} service ready on :{ports[name]}")
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
    if pending:
        _fail(f"not ready in {timeout:.0f}s: {', '.join(sorted(pending))}", f"see {STATE / 'logs'}")


def _print_welcome(secret: str, ports: dict[str, int]) -> None:
    console.print()
    console.rule("[bold]Aidline is running")
    console.print(f"  dashboard  [bold cyan]http://127.0.0.1:{ports['projection']}/[/]")
    for name, port in ports.items():
        console.print(f"  {name:<10} http://127.0.0.1:{port}/docs")
    lines = []
    for role, identity in DEV_IDENTITIES.items():
        token = mint_token(
            secret, identity["sub"], [role], nation=identity.get("nation"), hub=identity.get("hub")
        )
        lines.append(f"export TOKEN_{role.upper()}={token}")
    tokens = STATE / "tokens.env"
    write_private(tokens, "\n".join(lines) + "\n")
    console.print(f"\ndevelopment tokens (12 h), also in {tokens} (`. {tokens}`):")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False)
    console.print("Ctrl-C stops everything.")


def write_private(path: Path, text: str) -> None:
    """Write `path` for its owner alone (0600) in a folder only its owner may enter (0700):
    the file holds tokens of every role, admin included."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(descriptor, "w") as file:
        os.fchmod(descriptor, 0o600)  # an existing file keeps its old mode through O_CREAT
        file.write(text)


def _stop(started: Started) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan services
    console.print("\nstopping…")
    for process in started.processes.values():
        if process.poll() is None:
            process.terminate()
    for name, process in started.processes.items():
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        console.print(f"[green]✓[/] {name} stopped")
    if started.started_kafka:
        subprocess.run([str(REPO / "deploy" / "local" / "kafka.sh"), "down"])


def run(
    demo: bool = typer.Option(True, help="Load the demo scenario once the services are ready."),
) -> None:
    """Start Kafka and the four services (SQLite by default, PostgreSQL from DATABASE_URL)."""
    ports = service_ports()
    busy = [f"{name} :{port}" for name, port in ports.items() if _port_in_use(port)]
    if busy:
        _fail(
            f"ports already in use: {', '.join(busy)}",
            "stop what listens there (another `make run`?), or choose others: <SERVICE>_PORT",
        )
    kafka = _start_kafka()
    database = os.environ.get("DATABASE_URL", f"sqlite+aiosqlite:///{STATE}/data/aidline.db")
    console.print(f"[green]✓[/] database: {database.split('@')[-1]}")
    secret = os.environ.get("JWT_SECRET", DEV_SECRET)
    env = (
        {"KAFKA_RETRY_MAX_SECONDS": KAFKA_RETRY_MAX_SECONDS}
        | os.environ
        | {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": database}
        | {f"{name.upper()}_PORT": str(port) for name, port in ports.items()}
    )
    started = Started(_start_services(env), kafka.started)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        kafka.ready()  # the services started meanwhile
        _wait_ready(started.processes, ports)
        if demo:
            _load_demo(secret, ports)
        _print_welcome(secret, ports)
        logs = STATE / "logs"

        def say(message: str) -> None:
            console.print(f"[yellow]![/] {message} (its log: {logs})")

        while True:
            supervise(started.services, time.monotonic(), say)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if kafka.up is not None:  # stopped while the broker was still starting
            kafka.up.wait()
        _stop(started)


def _load_demo(secret: str, ports: dict[str, int]) -> None:
    from shared.cli.demo import load_demo
    from shared.demo.client import DemoError, Endpoints

    endpoints = Endpoints(*(f"http://127.0.0.1:{ports[name]}" for name in SERVICES))
    try:
        load_demo(secret=secret, endpoints=endpoints)
    except DemoError as exc:  # the stack still runs; say why the demo data is incomplete
        console.print(f"[yellow]! demo scenario stopped early:[/] {exc}")


if __name__ == "__main__":  # `make run`: only what running needs is imported, not every command
    typer.run(run)
