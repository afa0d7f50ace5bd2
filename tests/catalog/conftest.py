"""Fixtures of the catalog tests: a local HTTP server, SQLite databases, connections."""

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class _Recorder(BaseHTTPRequestHandler):
    """Answers /status/<code> with that status, anything else with 200 and JSON; records each request."""

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        self.server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": body})
        status = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        payload = json.dumps({"path": self.path, "status": status}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Set-Cookie", "session=abc")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    """A server on 127.0.0.1: `.url` is its base URL, `.requests` what it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.requests = []
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_local(db, platform_admin):
    """127.0.0.1 on the allow-list, private addresses allowed (the test server is on loopback)."""
    from apps.catalog import services

    return services.add_allowed_host(platform_admin, pattern="127.0.0.1", allow_private=True, note="test server")


@pytest.fixture
def sales_db(tmp_path):
    """A SQLite file with an `orders` table of three rows."""
    path = tmp_path / "sales.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT, amount REAL)")
    db.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(1, "north", 10.5), (2, "south", 20.0), (3, "north", 5.0)])
    db.commit()
    db.close()
    return path


@pytest.fixture
def make_connection(db, platform_admin):
    from apps.catalog import services

    # Shared with all teams unless a test says otherwise: the step types' tests run without a run's team.
    def make(name="sales-db", *, kind="sql", url, secret="", allow_writes=False, team=None, shared_with=()):
        return services.create_connection(platform_admin, name=name, kind=kind, url=url, secret=secret,
                                          allow_writes=allow_writes, team=team, shared_with=shared_with,
                                          shared_with_all=team is None and not shared_with)

    return make


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The standard cast signs in with passwords; the default hasher is slow on purpose.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
