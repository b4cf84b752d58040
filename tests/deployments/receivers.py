"""Receivers on 127.0.0.1 for the alert tests: a plain HTTP server that records every POST
(a generic webhook, and a rollback endpoint that answers 503), and a stand-in for Slack.

Prefect's `SlackWebhook` block sends through Apprise's Slack plugin, which posts to
`https://hooks.slack.com/services/A/B/C` whatever else it is told (a URL of another shape is
not a Slack webhook to Apprise, and nothing is sent). So `SlackStandIn` is an HTTPS proxy:
a process whose `HTTPS_PROXY` names it and whose `REQUESTS_CA_BUNDLE` trusts its own test
CA has its CONNECT to hooks.slack.com:443 answered here, over TLS with a certificate for
that name, and the POST recorded; a CONNECT to any other host is refused (and listed in
`Inbox.refused`: the Prefect server tries its collection registry on GitHub when a work
pool is created, and falls back to its own copy). Nothing leaves 127.0.0.1."""

from __future__ import annotations

import html
import json
import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

SLACK_HOST = "hooks.slack.com"


@dataclass
class Message:
    """One POST received: the channel (`slack` or the path's first part), path and JSON."""

    channel: str
    path: str
    body: dict[str, Any]

    @property
    def text(self) -> str:
        """All the text a person would read: Slack's attachment, or the webhook's fields."""
        if self.channel == "slack":  # Slack's escapes (<, >, &) undone
            return html.unescape(
                "\n".join(
                    str(a.get(k, ""))
                    for a in self.body.get("attachments", [])
                    for k in ("title", "text")
                )
            )
        return f"{self.body.get('subject', '')}\n{self.body.get('body', '')}"


@dataclass
class Inbox:
    messages: list[Message] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message: Message) -> None:
        with self.lock:
            self.messages.append(message)

    def about(self, channel: str, needle: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.channel == channel and needle in m.text]


@contextmanager
def http_receiver(inbox: Inbox) -> Iterator[str]:
    """Records POSTs as `Message`s (channel: the path's first part); `/rollback` answers
    503 (a rollback endpoint that is down), every other path 200. Yields the base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            channel = self.path.strip("/").split("/")[0]
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                body = {"raw": raw.decode(errors="replace")}
            inbox.add(Message(channel, self.path, body))
            status = 503 if channel == "rollback" else 200
            self.send_response(status)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _certificates(root: Path) -> tuple[Path, Path, Path]:
    """A test CA (ca.pem) and a certificate for hooks.slack.com signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evalkeeper test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(ca_usage, critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SLACK_HOST)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SLACK_HOST)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    root.mkdir(parents=True, exist_ok=True)
    ca_pem, cert_pem, key_pem = root / "ca.pem", root / "slack.pem", root / "slack.key"
    ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_pem, cert_pem, key_pem


def _read_head(stream: Any) -> tuple[str, dict[str, str]]:
    first = stream.readline().decode("latin-1").strip()
    headers: dict[str, str] = {}
    while True:
        line = stream.readline().decode("latin-1")
        if line in ("\r\n", "\n", ""):
            return first, headers
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()


@contextmanager
def slack_stand_in(root: Path, inbox: Inbox) -> Iterator[dict[str, str]]:
    """Start the stand-in; yields the environment a process needs to reach it (the proxy,
    its CA, and 127.0.0.1 left unproxied)."""
    ca_pem, cert_pem, key_pem = _certificates(root)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_pem, key_pem)

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            first, _ = _read_head(self.rfile)
            method, _, rest = first.partition(" ")
            target = rest.partition(" ")[0]
            if method != "CONNECT" or target != f"{SLACK_HOST}:443":
                inbox.refused.append(first)
                self.wfile.write(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                return
            self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self.wfile.flush()
            with context.wrap_socket(self.connection, server_side=True) as tls:
                stream = tls.makefile("rb")
                line, headers = _read_head(stream)
                raw = stream.read(int(headers.get("content-length") or 0))
                path = line.split(" ")[1] if " " in line else line
                inbox.add(Message("slack", path, json.loads(raw or b"{}")))
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n"
                    b"connection: close\r\n\r\nok"
                )

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield {
            "HTTPS_PROXY": proxy,
            "https_proxy": proxy,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": str(ca_pem),
        }
    finally:
        server.shutdown()
        server.server_close()
