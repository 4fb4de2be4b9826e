"""A real Neo4j 5.26 Community server, assembled from Maven Central jars.

No Docker and no tarball: ``pom.xml`` next to this module depends on ``org.neo4j:neo4j``;
:meth:`Neo4jServer.fetch` runs ``mvn dependency:copy-dependencies`` into ``<home>/lib`` and
:meth:`Neo4jServer.start` runs one JVM, ``org.neo4j.server.CommunityEntryPoint``, in its own
process session (research note ``neo4j-from-maven.md``, "way B").

Two folders are involved:

* ``home`` holds ``lib/`` (about 210 jars) and is shared by every clone and every instance:
  ``$PROVDB_NEO4J_HOME`` or ``~/.cache/provdb/neo4j-5.26``.
* ``instance_dir`` (default: ``home``) is the server's ``--home-dir``: ``conf/neo4j.conf``,
  ``data/``, ``logs/`` and ``run/`` (pid file). Tests give each server its own temporary one.

The CLI (``python -m provdb.neo4j_server`` and ``dlv neo4j``) calls these same methods.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from provdb.errors import ProvDBError

__all__ = [
    "NEO4J_VERSION",
    "Neo4jServer",
    "Neo4jServerError",
    "Neo4jStatus",
    "default_home",
    "free_port",
]

POM_PATH = Path(__file__).with_name("pom.xml")
MAIN_CLASS = "org.neo4j.server.CommunityEntryPoint"
PID_FILE_NAME = "provdb-neo4j.pid"
CONSOLE_LOG_NAME = "console.log"
COMPLETE_MARKER = ".provdb-complete"
DEFAULT_PORT = 7687
DEFAULT_DATABASE = "neo4j"
FETCH_TIMEOUT_S = 1800
JAVA_HINT = "install a Java 17 JDK (e.g. `apt-get install openjdk-17-jdk`)"
MVN_HINT = "install Maven 3.8+ (e.g. `apt-get install maven`)"

# server.jvm.additional of the 5.26 neo4j.conf, without -XX:+AlwaysPreTouch (it commits the
# whole heap at start-up and only inflates RSS for a test server).
JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseG1GC",
    "-XX:-OmitStackTraceInFastThrow",
    "-XX:+UnlockExperimentalVMOptions",
    "-XX:+TrustFinalNonStaticFields",
    "-XX:+DisableExplicitGC",
    "-Djdk.nio.maxCachedBufferSize=1024",
    "-Dio.netty.tryReflectionSetAccessible=true",
    "-Djdk.tls.ephemeralDHKeySize=2048",
    "-Djdk.tls.rejectClientInitiatedRenegotiation=true",
    "-XX:FlightRecorderOptions=stackdepth=256",
    "-XX:+UnlockDiagnosticVMOptions",
    "-XX:+DebugNonSafepoints",
    "--add-opens=java.base/java.nio=ALL-UNNAMED",
    "--add-opens=java.base/java.io=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--enable-native-access=ALL-UNNAMED",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j.layout.jsonTemplate.maxStringLength=32768",
    "-Dfile.encoding=UTF-8",
)


class Neo4jServerError(ProvDBError):
    """The Maven-provisioned Neo4j server could not be fetched, started or stopped."""

    code = "unavailable"


def _pom_version(pom: Path = POM_PATH) -> str:
    """The ``neo4j.version`` property of the packaged pom (e.g. ``5.26.29``)."""
    match = re.search(r"<neo4j\.version>([^<]+)</neo4j\.version>", pom.read_text())
    if not match:
        raise Neo4jServerError(f"no <neo4j.version> in {pom}")
    return match.group(1).strip()


NEO4J_VERSION = _pom_version()


def default_home() -> Path:
    """``$PROVDB_NEO4J_HOME``, else ``~/.cache/provdb/neo4j-5.26`` (shared by all clones)."""
    env = os.environ.get("PROVDB_NEO4J_HOME")
    if env:
        return Path(env).expanduser().resolve()
    major_minor = ".".join(NEO4J_VERSION.split(".")[:2])
    return Path.home() / ".cache" / "provdb" / f"neo4j-{major_minor}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _require_tool(name: str, hint: str) -> str:
    """The absolute path of executable ``name`` on PATH, or a clear error."""
    path = shutil.which(name)
    if path is None:
        raise Neo4jServerError(f"`{name}` not found on PATH: {hint}")
    return path


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a fully exited zombie counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # the state letter follows the parenthesised command name
    if stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X"):
        return True
    # A zombie leader thread while other JVM threads still run is an exiting, live process.
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    """The command line of ``pid`` with spaces between arguments ('' if unreadable)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` in bytes, from /proc (None if unavailable)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _tail(path: Path, lines: int = 40, start: int = 0) -> str:
    """The last ``lines`` lines of ``path`` from byte offset ``start`` ('' if absent)."""
    try:
        with path.open("rb") as fh:
            fh.seek(start)
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (blocks until other holders release it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class Neo4jStatus:
    """What :meth:`Neo4jServer.status` found."""

    running: bool
    pid: int | None
    uri: str
    ready: bool
    rss_bytes: int | None
    instance_dir: Path

    def describe(self) -> str:
        """One human-readable line."""
        if not self.running:
            return f"Neo4j not running (instance {self.instance_dir})"
        rss = f", RSS {self.rss_bytes / 2**20:.0f} MiB" if self.rss_bytes else ""
        state = "ready" if self.ready else "starting or not answering"
        return f"Neo4j running, {state}, at {self.uri} (pid {self.pid}{rss})"


class Neo4jServer:
    """One Neo4j 5.26 Community server JVM running from Maven-fetched jars.

    ``password=None`` turns authentication off; with a password, user ``neo4j`` gets it as its
    initial password (set once, before the first start). Heap and page cache sizes are JVM /
    Neo4j size strings such as ``512m`` or ``1g``.
    """

    def __init__(
        self,
        home: Path | str | None = None,
        *,
        port: int | None = None,
        instance_dir: Path | str | None = None,
        password: str | None = None,
        heap_initial: str = "512m",
        heap_max: str = "1g",
        pagecache: str = "256m",
    ) -> None:
        self.home = Path(home).expanduser().resolve() if home else default_home()
        self.instance_dir = Path(instance_dir).expanduser().resolve() if instance_dir else self.home
        self.port = port or self._configured_port() or DEFAULT_PORT
        self.password = password
        self.heap_initial = heap_initial
        self.heap_max = heap_max
        self.pagecache = pagecache
        self._proc: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    # ---------------------------------------------------------------- paths

    @property
    def lib_dir(self) -> Path:
        """Where the server's jars live (shared by all instances of this home)."""
        return self.home / "lib"

    @property
    def conf_dir(self) -> Path:
        """The ``--config-dir`` holding ``neo4j.conf``."""
        return self.instance_dir / "conf"

    @property
    def conf_file(self) -> Path:
        """The ``neo4j.conf`` this instance runs with."""
        return self.conf_dir / "neo4j.conf"

    @property
    def log_file(self) -> Path:
        """The JVM's stdout/stderr (console-mode log); Neo4j also writes ``debug.log`` there."""
        return self.instance_dir / "logs" / CONSOLE_LOG_NAME

    @property
    def pid_file(self) -> Path:
        """Pid of a running server, so another process can stop it."""
        return self.instance_dir / "run" / PID_FILE_NAME

    @property
    def uri(self) -> str:
        """The Bolt URI, ``bolt://127.0.0.1:PORT``."""
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """The driver ``auth`` argument: None when authentication is off."""
        return ("neo4j", self.password) if self.password else None

    def _configured_port(self) -> int | None:
        """The Bolt port in an existing ``neo4j.conf`` of this instance, if any."""
        try:
            text = self.conf_file.read_text()
        except OSError:
            return None
        match = re.search(r"^server\.bolt\.listen_address=[^:\n]*:(\d+)\s*$", text, re.M)
        return int(match.group(1)) if match else None

    # ---------------------------------------------------------------- fetch

    def lib_complete(self) -> bool:
        """Whether ``lib/`` holds a finished copy for the packaged pom."""
        marker = self.lib_dir / COMPLETE_MARKER
        try:
            digest, count = marker.read_text().split()
        except (OSError, ValueError):
            return False
        jars = list(self.lib_dir.glob("*.jar"))
        return digest == _pom_digest() and int(count) == len(jars) and self._core_jars_present()

    def _core_jars_present(self) -> bool:
        """The jars the server cannot start without (entry point, storage engine)."""
        names = {p.name for p in self.lib_dir.glob("*.jar")}
        return {
            f"org.neo4j.neo4j-{NEO4J_VERSION}.jar",
            f"org.neo4j.neo4j-record-storage-engine-{NEO4J_VERSION}.jar",
        } <= names

    def fetch(self, *, force: bool = False, quiet: bool = True) -> float:
        """Resolve the server jars from Maven into ``home/lib`` unless already complete.

        Reuses ``~/.m2``. Returns the seconds spent (0.0 if there was nothing to do).
        Concurrent callers on the same home wait for each other.
        """
        if not force and self.lib_complete():
            return 0.0
        mvn = _require_tool("mvn", MVN_HINT)
        _require_tool("java", JAVA_HINT)
        with _file_lock(self.home / ".fetch.lock"):
            if not force and self.lib_complete():
                return 0.0
            started = time.monotonic()
            self._copy_dependencies(mvn, quiet=quiet)
            return time.monotonic() - started

    def _copy_dependencies(self, mvn: str, *, quiet: bool) -> None:
        """Run mvn into a scratch folder, then swap it in as ``lib/`` with a marker."""
        self.home.mkdir(parents=True, exist_ok=True)
        for stale in [*self.home.glob("lib.partial-*"), *self.home.glob("lib.old-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        pom = self.home / "pom.xml"
        shutil.copyfile(POM_PATH, pom)
        scratch = Path(tempfile.mkdtemp(prefix="lib.partial-", dir=self.home))
        cmd = [
            mvn, "-B", *(["-q"] if quiet else []), "-f", str(pom),
            "dependency:copy-dependencies", "-DincludeScope=runtime",
            "-Dmdep.prependGroupId=true", f"-DoutputDirectory={scratch}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, cwd=self.home, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(scratch, ignore_errors=True)
            raise Neo4jServerError(f"mvn did not finish in {FETCH_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            out = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise Neo4jServerError(f"mvn failed (exit {done.returncode}): {' '.join(cmd)}\n{out}")
        jars = list(scratch.glob("*.jar"))
        (scratch / COMPLETE_MARKER).write_text(f"{_pom_digest()} {len(jars)}\n")
        # swap with two renames, so lib/ is missing only for an instant (a running JVM keeps
        # its open jars; the old copy is deleted afterwards)
        old = self.home / f"lib.old-{os.getpid()}"
        if self.lib_dir.exists():
            self.lib_dir.rename(old)
        scratch.rename(self.lib_dir)
        shutil.rmtree(old, ignore_errors=True)
        if not self._core_jars_present():
            raise Neo4jServerError(f"mvn finished but {self.lib_dir} lacks the Neo4j server jars")

    def lib_stats(self) -> tuple[int, int]:
        """``(jar count, total bytes)`` of ``lib/``."""
        jars = list(self.lib_dir.glob("*.jar"))
        return len(jars), sum(p.stat().st_size for p in jars)

    # ---------------------------------------------------------------- config

    def config_lines(self) -> list[str]:
        """The ``neo4j.conf`` lines for this instance (valid 5.26 setting names only)."""
        auth = "true" if self.password else "false"
        address = f"127.0.0.1:{self.port}"
        return [
            "# Written by provdb.neo4j_server; rewritten on every start.",
            "server.directories.data=data",
            "server.directories.logs=logs",
            "server.directories.run=run",
            "server.directories.import=import",
            "server.default_listen_address=127.0.0.1",
            "server.default_advertised_address=127.0.0.1",
            "server.bolt.enabled=true",
            f"server.bolt.listen_address={address}",
            f"server.bolt.advertised_address={address}",
            "server.bolt.tls_level=DISABLED",
            "server.http.enabled=false",
            "server.https.enabled=false",
            "dbms.routing.enabled=false",
            f"dbms.security.auth_enabled={auth}",
            "dbms.usage_report.enabled=false",
            "client.allow_telemetry=false",
            f"server.memory.heap.initial_size={self.heap_initial}",
            f"server.memory.heap.max_size={self.heap_max}",
            f"server.memory.pagecache.size={self.pagecache}",
            "db.tx_log.rotation.retention_policy=keep_none",
            "db.tx_log.rotation.size=32M",
            "db.tx_log.preallocate=false",
            "db.logs.query.enabled=OFF",
            # Netty's default 5 s quiet period, paid twice, made every stop take 10+ s.
            "internal.dbms.bolt.netty_server_shutdown_quiet_period=0",
            "internal.dbms.bolt.netty_server_shutdown_timeout=5",
        ]

    def write_config(self) -> Path:
        """Write ``conf/neo4j.conf`` (Bolt on 127.0.0.1 only, HTTP off); returns its path."""
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        self.conf_file.write_text("\n".join(self.config_lines()) + "\n")
        return self.conf_file

    def java_command(self) -> list[str]:
        """The one-JVM server command ("way B")."""
        java = _require_tool("java", JAVA_HINT)
        return [
            java, *JVM_FLAGS, f"-Xms{self.heap_initial}", f"-Xmx{self.heap_max}",
            "-cp", f"{self.lib_dir}/*", MAIN_CLASS,
            f"--home-dir={self.instance_dir}", f"--config-dir={self.conf_dir}", "--console-mode",
        ]  # fmt: skip

    def _set_initial_password(self) -> None:
        """Give user ``neo4j`` its password before the first start (no-op once set)."""
        if not self.password or (self.instance_dir / "data" / "dbms" / "auth.ini").exists():
            return
        java = _require_tool("java", JAVA_HINT)
        env = {**os.environ, "NEO4J_HOME": str(self.instance_dir), "NEO4J_CONF": str(self.conf_dir)}
        cmd = [
            java, "-Xmx128m", "-cp", f"{self.lib_dir}/*", f"-Dbasedir={self.instance_dir}",
            "org.neo4j.server.startup.Neo4jAdminCommand",
            "dbms", "set-initial-password", self.password,
        ]  # fmt: skip
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            out = (done.stdout + done.stderr).strip()
            raise Neo4jServerError(f"setting the initial Neo4j password failed: {out}")

    # ---------------------------------------------------------------- run

    def read_pid(self) -> int | None:
        """The pid of this instance's live server JVM, or None (stale pid files are removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _process_alive(pid) and MAIN_CLASS in _cmdline(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def start(self, timeout: float = 180.0, *, detach: bool = True) -> float:
        """Start the server and wait until ``RETURN 1`` succeeds on database ``neo4j``.

        ``detach=False`` stops the server when this Python process exits (atexit; and, when
        called from the main thread, a kernel death signal covers a killed process too);
        ``detach=True`` leaves it running for a later ``stop()`` from any process. Returns the
        start-to-ready seconds (also in :attr:`startup_seconds`). Fails fast, with the log
        tail, if the JVM exits; raises if this instance already runs or the port is taken.
        """
        self._check_startable()
        self.write_config()
        self._set_initial_password()
        for sub in ("data", "logs", "run"):
            (self.instance_dir / sub).mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        # PR_SET_PDEATHSIG fires when the *thread* that spawned the child ends: main thread only
        tie = not detach and threading.current_thread() is threading.main_thread()
        log_offset = self._launch(tie_to_parent=tie)
        if not detach:
            atexit.register(self.stop)
        try:
            self._wait_ready(started + timeout, log_offset)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self.startup_seconds

    def _check_startable(self) -> None:
        """Refuse to start without jars, twice, or on a port something else holds."""
        if not self._core_jars_present():
            raise Neo4jServerError(
                f"Neo4j jars missing in {self.lib_dir}: run `python -m provdb.neo4j_server fetch`"
                f" (or Neo4jServer(home=...).fetch()) first"
            )
        pid = self.read_pid()
        if pid is not None:
            raise Neo4jServerError(f"Neo4j already running for {self.instance_dir} (pid {pid})")
        if _port_in_use(self.port):
            raise Neo4jServerError(f"port {self.port} on 127.0.0.1 is already in use")

    def _launch(self, *, tie_to_parent: bool) -> int:
        """Spawn the JVM in its own session, output to the console log; returns the log offset.

        ``tie_to_parent`` makes the kernel SIGTERM the JVM if this process dies without
        stopping it (e.g. a killed test run), so no orphan server is left behind.
        """
        cmd = self.java_command()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            offset = log.tell()
            log.write(f"=== provdb start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd, cwd=self.instance_dir, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if tie_to_parent else None,
            )  # fmt: skip
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return offset

    def _wait_ready(self, deadline: float, log_offset: int) -> None:
        """Poll with the official driver until ``RETURN 1`` works, the JVM dies or time runs out."""
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError

        assert self._proc is not None
        last_error: Exception | None = None
        with GraphDatabase.driver(self.uri, auth=self.auth, connection_timeout=5) as driver:
            while True:
                code = self._proc.poll()
                if code is not None:
                    tail = _tail(self.log_file, start=log_offset)
                    raise Neo4jServerError(f"Neo4j JVM exited with code {code}; log tail:\n{tail}")
                try:
                    with driver.session(database=DEFAULT_DATABASE) as session:
                        session.run("RETURN 1").consume()
                    return
                except AuthError as exc:
                    raise Neo4jServerError(
                        f"Neo4j at {self.uri} is up but refused the credentials (a password set"
                        f" earlier in {self.instance_dir / 'data'} differs?): {exc}"
                    ) from exc
                except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
                    last_error = exc
                if time.monotonic() > deadline:
                    tail = _tail(self.log_file, start=log_offset)
                    raise Neo4jServerError(
                        f"Neo4j not ready at {self.uri} in time (last error: {last_error!r}); "
                        f"log tail:\n{tail}"
                    )
                time.sleep(0.25)

    def stop(self, timeout: float = 60.0) -> bool:
        """SIGTERM the server's process group, SIGKILL after ``timeout`` s; True if one ran."""
        pid = self._proc.pid if self._proc and self._proc.poll() is None else self.read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        self._signal_group(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            self._signal_group(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        (self.instance_dir / "run" / "neo4j.pid").unlink(missing_ok=True)
        return True

    @staticmethod
    def _signal_group(pid: int, sig: signal.Signals) -> None:
        """Send ``sig`` to the process group led by ``pid`` (falls back to the pid)."""
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``pid`` to exit (reaping it if it is our child)."""
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _process_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def wait(self) -> None:
        """Block until this instance's server JVM exits (e.g. a foreground CLI server)."""
        if self._proc is not None:
            self._proc.wait()
            return
        pid = self.read_pid()
        while pid is not None and _process_alive(pid):
            time.sleep(0.5)

    def status(self, *, probe: bool = True) -> Neo4jStatus:
        """Whether this instance's server runs, and (``probe``) answers ``RETURN 1``."""
        pid = self.read_pid()
        ready = pid is not None and probe and self._answers()
        return Neo4jStatus(
            running=pid is not None,
            pid=pid,
            uri=self.uri,
            ready=ready,
            rss_bytes=_rss_bytes(pid) if pid else None,
            instance_dir=self.instance_dir,
        )

    def _answers(self) -> bool:
        """One quick ``RETURN 1`` on database ``neo4j`` (a login refusal counts as an answer)."""
        from neo4j import GraphDatabase
        from neo4j.exceptions import AuthError

        try:
            with (
                GraphDatabase.driver(self.uri, auth=self.auth, connection_timeout=3) as driver,
                driver.session(database=DEFAULT_DATABASE) as session,
            ):
                session.run("RETURN 1").consume()
        except AuthError:
            return True  # up, but this object lacks the password
        except Exception:  # noqa: BLE001 - not answering, whatever the reason
            return False
        return True

    def version(self) -> str:
        """The server's version from ``CALL dbms.components()`` (e.g. ``5.26.29``)."""
        from neo4j import GraphDatabase

        with (
            GraphDatabase.driver(self.uri, auth=self.auth) as driver,
            driver.session(database=DEFAULT_DATABASE) as session,
        ):
            record = session.run(
                "CALL dbms.components() YIELD name, versions, edition "
                "WHERE name = 'Neo4j Kernel' RETURN versions[0] AS version, edition"
            ).single()
        if record is None:
            raise Neo4jServerError("dbms.components() returned no Neo4j Kernel row")
        return str(record["version"])


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent dies (best effort)."""
    with contextlib.suppress(Exception):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def _pom_digest() -> str:
    """SHA-256 of the packaged pom without comments and blanks: a dependency change re-fetches."""
    text = re.sub(r"<!--.*?-->", "", POM_PATH.read_text(), flags=re.S)
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:16]


@contextlib.contextmanager
def temporary_server(**options: str) -> Iterator[Neo4jServer]:
    """A throw-away server on a free port with its own data in a temporary folder, stopped
    (and its data removed) on exit; ``options`` are :class:`Neo4jServer` sizes (``heap_max``,
    ``pagecache``). For benchmarks and scripts; the jars are fetched once into the home."""
    with tempfile.TemporaryDirectory(prefix="provdb-neo4j-") as tmp:
        server = Neo4jServer(port=free_port(), instance_dir=tmp, **options)
        server.fetch()
        server.start(detach=False)
        try:
            yield server
        finally:
            server.stop()
