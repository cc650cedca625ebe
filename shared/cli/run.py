"""`aidline run` (what `make run` calls): Kafka, the four services, demo data, addresses.

Reuses what is already there: a running broker, existing SQLite files. A service that exits
is started again, after a pause that doubles with each quick exit (`supervise`). Ctrl-C or
SIGTERM stops the services, and the broker too when this command started it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import typer
from rich.console import Console

from shared.auth import DEV_SECRET, Role, mint_token

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("AIDLINE_HOME", REPO / ".aidline"))  # as deploy/local/*.sh
SERVICES = {"request": 8001, "allocation": 8002, "delivery": 8003, "projection": 8004}
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


def _start_kafka() -> tuple[str, bool]:
    if bootstrap := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        console.print(f"[green]✓[/] Kafka: using {bootstrap}")
        return bootstrap, False
    script = REPO / "deploy" / "local" / "kafka.sh"
    status = subprocess.run([str(script), "status"], capture_output=True, text=True)
    already = status.returncode == 0
    console.print("[cyan]…[/] Kafka: " + ("already running" if already else "starting (KRaft)"))
    result = subprocess.run([str(script), "up"], text=True)
    if result.returncode != 0:
        _fail("Kafka did not start (its log tail is above)", "see `deploy/local/kafka.sh logs`")
    bootstrap = "127.0.0.1:" + os.environ.get("KAFKA_PORT", "9092")
    console.print(f"[green]✓[/] Kafka: {bootstrap}")
    return bootstrap, not already


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


def _wait_ready(processes: dict[str, subprocess.Popen[bytes]], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    pending = set(processes)
    with console.status("waiting for the services to be ready…"):
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                if processes[name].poll() is not None:
                    _fail(f"the {name} service exited", f"see {STATE / 'logs' / (name + '.log')}")
                try:
                    response = httpx.get(f"http://127.0.0.1:{SERVICES[name]}/readyz", timeout=2)
                    if response.status_code == 200:
                        pending.discard(name)
                        console.print(f"[green]✓[/] {name} service ready on :{SERVICES[name]}")
                except httpx.TransportError:
                    pass
            time.sleep(0.3)
    if pending:
        _fail(f"not ready in {timeout:.0f}s: {', '.join(sorted(pending))}", f"see {STATE / 'logs'}")


def _print_welcome(secret: str) -> None:
    console.print()
    console.rule("[bold]Aidline is running")
    console.print("  dashboard  [bold cyan]http://127.0.0.1:8004/[/]")
    for name, port in SERVICES.items():
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
    busy = [f"{name} :{port}" for name, port in SERVICES.items() if _port_in_use(port)]
    if busy:
        _fail(
            f"ports already in use: {', '.join(busy)}",
            "stop what listens there (another `make run`?) and try again",
        )
    bootstrap, started_kafka = _start_kafka()
    database = os.environ.get("DATABASE_URL", f"sqlite+aiosqlite:///{STATE}/data/aidline.db")
    console.print(f"[green]✓[/] database: {database.split('@')[-1]}")
    secret = os.environ.get("JWT_SECRET", DEV_SECRET)
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "DATABASE_URL": database}
    started = Started(_start_services(env), started_kafka)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        _wait_ready(started.processes)
        if demo:
            _load_demo(secret)
        _print_welcome(secret)
        logs = STATE / "logs"

        def say(message: str) -> None:
            console.print(f"[yellow]![/] {message} (its log: {logs})")

        while True:
            supervise(started.services, time.monotonic(), say)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(started)


def _load_demo(secret: str) -> None:
    from shared.cli.demo import load_demo
    from shared.demo.client import DemoError

    try:
        load_demo(secret=secret)
    except DemoError as exc:  # the stack still runs; say why the demo data is incomplete
        console.print(f"[yellow]! demo scenario stopped early:[/] {exc}")
