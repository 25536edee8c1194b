"""Logins: SCRAM-SHA-256 (RFC 5802, RFC 7677) against roles in the cluster's catalog.

The catalog keeps a salted verifier per role (clone/users.py). A role that does not exist
goes through the same exchange with a made-up salt and fails at the same step, so a client
cannot tell a wrong name from a wrong password; failures are slowed down per client and
name. `trust` is only for the Unix socket, and only when the server was started so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import threading
import time
import unicodedata

import attrs

from asof.clone.users import CREATE_USER, DROP_USER
from asof.eventlog.events import Event
from asof.pgwire import messages as m
from asof.pgwire.errors import INVALID_AUTHORIZATION, INVALID_PASSWORD, PROTOCOL_VIOLATION, PgError
from asof.pgwire.wire import Wire
from asof.queryapi import Cluster
from asof.queryapi.errors import ProgrammingError, ReadOnlyError

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096
SASL, SASL_CONTINUE, SASL_FINAL = 10, 11, 12
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$.-]{0,62}$")


# ---------------------------------------------------------------- verifiers
def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _normalize(password: str) -> bytes:
    # SASLprep's core: NFKC; PostgreSQL, too, falls back to the raw bytes when it fails.
    return unicodedata.normalize("NFKC", password).encode()


def make_verifier(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    salt = os.urandom(16) if salt is None else salt
    salted = hashlib.pbkdf2_hmac("sha256", _normalize(password), salt, iterations)
    stored = hashlib.sha256(_hmac(salted, b"Client Key")).digest()
    server = _hmac(salted, b"Server Key")
    b64 = base64.b64encode
    return f"{MECHANISM}${iterations}:{b64(salt).decode()}${b64(stored).decode()}:{b64(server).decode()}"


@attrs.frozen
class Verifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        mech, params, keys = text.split("$")
        if mech != MECHANISM:
            raise ValueError("not a SCRAM-SHA-256 verifier")
        iters, salt = params.split(":")
        stored, server = keys.split(":")
        d = base64.b64decode
        return cls(int(iters), d(salt), d(stored), d(server))


def _mock_verifier(user: str, secret: bytes) -> Verifier:
    salt = hashlib.sha256(secret + user.encode()).digest()[:16]
    return Verifier(ITERATIONS, salt, os.urandom(32), os.urandom(32))


# ------------------------------------------------------------- user admin
def add_user(cluster: Cluster, name: str, password: str) -> None:
    """Create a login role; the catalog logs its verifier, never the password."""
    _check_name(name)
    if not password:
        raise ProgrammingError("the password is empty; give a password")
    if cluster.read_only:
        raise ReadOnlyError("the cluster was opened read-only")
    catalog = cluster.catalog
    with catalog.lock:
        if catalog.users.get(name) is not None:
            raise ProgrammingError(f"user {name!r} already exists; drop it first to replace it")
        catalog.append(
            [Event(CREATE_USER, None, 0, {"name": name, "verifier": make_verifier(password)})],
            sql=f"CREATE USER {name}",
        )


def drop_user(cluster: Cluster, name: str) -> None:
    if cluster.read_only:
        raise ReadOnlyError("the cluster was opened read-only")
    catalog = cluster.catalog
    with catalog.lock:
        if catalog.users.get(name) is None:
            known = ", ".join(catalog.users.names()) or "none"
            raise ProgrammingError(f"user {name!r} does not exist (users: {known})")
        catalog.append([Event(DROP_USER, None, 0, {"name": name})], sql=f"DROP USER {name}")


def list_users(cluster: Cluster) -> list[str]:
    return cluster.catalog.users.names()


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProgrammingError(
            f"invalid user name {name!r}: use letters, digits and _ (at most 63, not starting "
            "with a digit)"
        )


# ----------------------------------------------------------------- policy
class AuthPolicy:
    """Who may log in how, and the slowdown after failed attempts."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        trust_local: bool = False,
        max_failures: int = 5,
        window: float = 60.0,
        delay: float = 0.25,
    ) -> None:
        self.cluster = cluster
        self.trust_local = trust_local
        self.max_failures = max_failures
        self.window = window
        self.delay = delay
        self._secret = os.urandom(16)
        self._failures: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()

    def recent_failures(self, key: tuple[str, str]) -> int:
        now = time.monotonic()
        with self._lock:
            stamps = [t for t in self._failures.get(key, []) if now - t < self.window]
            self._failures[key] = stamps
            return len(stamps)

    def failed(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.setdefault(key, []).append(time.monotonic())
            if len(self._failures) > 10_000:
                self._failures.clear()

    def succeeded(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


def authenticate(conn: Wire, policy: AuthPolicy) -> None:
    """Run the login exchange; return when the client is in, raise PgError when not
    (AuthenticationOk itself is sent by the caller)."""
    user = conn.user
    if conn.local and policy.trust_local:
        return
    users = policy.cluster.catalog.users
    if not users.names():
        raise PgError(
            INVALID_AUTHORIZATION,
            "this asof cluster has no users, so password logins are refused",
            hint="add one with `asof --data DIR user add NAME` while the server is stopped",
        )
    key = (conn.peer, user)
    failures = policy.recent_failures(key)
    if failures >= policy.max_failures:
        policy.failed(key)
        time.sleep(policy.delay)
        raise PgError(
            INVALID_PASSWORD,
            f'password authentication failed for user "{user}"',
            detail="too many failed attempts; wait a minute before trying again",
        )
    record = users.get(user)
    verifier = Verifier.parse(record.verifier) if record else _mock_verifier(user, policy._secret)
    ok = _scram(conn, verifier) and record is not None
    if not ok:
        policy.failed(key)
        time.sleep(policy.delay * (1 + failures))
        raise PgError(INVALID_PASSWORD, f'password authentication failed for user "{user}"')
    policy.succeeded(key)


def _sasl_message(conn: Wire) -> bytes:
    conn.flush()
    kind, body = conn.reader.message()
    if kind != b"p":
        raise PgError(PROTOCOL_VIOLATION, f"expected SASL response, got message type {kind!r}")
    return body


def _scram(conn: Wire, v: Verifier) -> bool:
    conn.send(m.authentication(SASL, m.cstr(MECHANISM) + b"\x00"))
    b = m.Body(_sasl_message(conn))
    mechanism = b.cstr()
    if mechanism != MECHANISM:
        raise PgError(
            PROTOCOL_VIOLATION, f"client selected an invalid SASL mechanism {mechanism!r}"
        )
    length = b.int32()
    first = b.bytes(length).decode("utf-8", "replace") if length >= 0 else ""
    parts = first.split(",", 2)
    if len(parts) < 3 or parts[0] not in ("n", "y"):
        raise PgError(
            PROTOCOL_VIOLATION, "malformed SCRAM message (channel binding is not offered)"
        )
    bare = parts[2]
    attrs_ = dict(kv.split("=", 1) for kv in bare.split(",") if "=" in kv)
    client_nonce = attrs_.get("r", "")
    if not client_nonce:
        raise PgError(PROTOCOL_VIOLATION, "malformed SCRAM message (no nonce)")
    nonce = client_nonce + base64.b64encode(os.urandom(18)).decode()
    server_first = f"r={nonce},s={base64.b64encode(v.salt).decode()},i={v.iterations}"
    conn.send(m.authentication(SASL_CONTINUE, server_first.encode()))
    final = _sasl_message(conn).decode("utf-8", "replace")
    without_proof, _, proof_part = final.rpartition(",p=")
    fields = dict(kv.split("=", 1) for kv in without_proof.split(",") if "=" in kv)
    if fields.get("r") != nonce or not proof_part:
        raise PgError(PROTOCOL_VIOLATION, "malformed SCRAM message (nonce mismatch)")
    gs2 = base64.b64encode(f"{parts[0]},{parts[1]},".encode()).decode()
    if fields.get("c") != gs2:
        raise PgError(PROTOCOL_VIOLATION, "malformed SCRAM message (channel binding mismatch)")
    auth_message = f"{bare},{server_first},{without_proof}".encode()
    try:
        proof = base64.b64decode(proof_part, validate=True)
    except ValueError:
        return False
    signature = _hmac(v.stored_key, auth_message)
    if len(proof) != len(signature):
        return False
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    if not hmac.compare_digest(hashlib.sha256(client_key).digest(), v.stored_key):
        return False
    server_signature = base64.b64encode(_hmac(v.server_key, auth_message)).decode()
    conn.send(m.authentication(SASL_FINAL, f"v={server_signature}".encode()))
    return True
