#!/usr/bin/env python3
"""An SMTP relay for the mail tests (tests/mail.rs), with aiosmtpd.

    python tests/python/smtp_sink.py --out DIR [--refuse ADDRESS]...
        [--user USER --password PASSWORD] [--cert CERT.pem --key KEY.pem]

Listens on 127.0.0.1 at a free port and prints that port on the first line
of stdout once it accepts connections. Each message it accepts is written
to DIR as `NNNN.eml` (the bytes received) and `NNNN.json`: the envelope,
whether the session was encrypted and logged in, and the message parsed by
Python's own `email` package (From, To, Subject, Message-ID, the decoded
plain text and HTML, each attachment's file name, type and bytes in
base64), an independent reading of what mvnobill wrote.

`--refuse` answers `550 5.1.1` to `RCPT TO` for that address. `--user` and
`--password` require a login (AUTH PLAIN or LOGIN) before `MAIL FROM`;
`--cert` and `--key` offer STARTTLS and require it, or with
`--implicit-tls` speak TLS from the first byte (a submissions port, 465).
`--mail-per-session N` answers `421` to the N+1th `MAIL FROM` of a session
and closes it, as relays that cap messages per connection do. Every SMTP
session opened adds a line to DIR/connections.
"""

import argparse
import asyncio
import base64
import email
import email.policy
import json
import logging
import os
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Sink:
    def __init__(self, out, refuse, implicit_tls):
        self.out = out
        self.implicit_tls = implicit_tls
        self.refuse = {a.lower() for a in refuse}
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.refuse:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        stem = os.path.join(self.out, f"{self.count:04d}")
        raw = envelope.original_content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        attachments = [
            {
                "filename": part.get_filename(),
                "content_type": part.get_content_type(),
                "data": base64.b64encode(part.get_payload(decode=True)).decode(),
            }
            for part in message.iter_attachments()
        ]
        summary = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "tls": self.implicit_tls or session.ssl is not None,
            "authenticated": bool(session.authenticated),
            "from": str(message["From"]),
            "to": str(message["To"]),
            "reply_to": str(message["Reply-To"]),
            "subject": str(message["Subject"]),
            "message_id": str(message["Message-ID"]),
            "content_type": message.get_content_type(),
            "text": plain.get_content() if plain is not None else None,
            "html": html.get_content() if html is not None else None,
            "attachments": attachments,
        }
        # Written whole before the 250 goes back: the client reads them after.
        for suffix, data in ((".eml", raw), (".json", json.dumps(summary).encode())):
            with open(stem + suffix + ".tmp", "wb") as f:
                f.write(data)
            os.replace(stem + suffix + ".tmp", stem + suffix)
        return f"250 2.0.0 OK queued as {self.count:04d}"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        # handled=False: aiosmtpd answers 535 itself on a failure.
        return AuthResult(success=ok, handled=False)

    return check


async def serve(args):
    os.makedirs(args.out, exist_ok=True)
    handler = Sink(args.out, args.refuse, args.implicit_tls)
    tls_context = None
    if args.cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(args.cert, args.key)
    loop = asyncio.get_running_loop()

    def session():
        with open(os.path.join(args.out, "connections"), "a") as f:
            f.write("session\n")
        options = dict(hostname="mvnobill-sink", loop=loop)
        if args.mail_per_session:
            options.update(command_call_limit={"MAIL": args.mail_per_session})
        if tls_context is not None and not args.implicit_tls:
            options.update(tls_context=tls_context, require_starttls=True)
        if args.user:
            options.update(
                authenticator=authenticator(args.user, args.password),
                auth_required=True,
                # Only STARTTLS is TLS to aiosmtpd; without it (no TLS on
                # this machine, or TLS it does not see), a login is allowed.
                auth_require_tls=tls_context is not None and not args.implicit_tls,
            )
        return SMTP(handler, **options)

    server = await loop.create_server(
        session,
        host="127.0.0.1",
        port=0,
        ssl=tls_context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


def main():
    # Quiet: aiosmtpd warns about its own deprecated Session.login_data on each
    # login, and logs a traceback for the handshake the tests make fail on
    # purpose; what the client sees is what the tests check.
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--refuse", action="append", default=[])
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--mail-per-session", type=int)
    args = parser.parse_args()
    if bool(args.user) != bool(args.password) or bool(args.cert) != bool(args.key):
        parser.error("--user goes with --password, --cert with --key")
    if args.implicit_tls and not args.cert:
        parser.error("--implicit-tls needs --cert and --key")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
