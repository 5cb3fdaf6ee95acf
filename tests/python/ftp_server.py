"""An FTP or FTPS server for the tests (pyftpdlib), on 127.0.0.1 only.

Serves --root to one user (password in $FTP_TEST_PASSWORD), on a free port
that it prints as "PORT <n>" on stdout once it listens.

  --tls DIR           explicit TLS (AUTH TLS) required on the control and data
                      connections; writes DIR/ca.pem (a test CA) and
                      DIR/server.pem (a certificate for 127.0.0.1 and localhost
                      signed by it, with its key)
  --abort PATH        abort the data connection of a RETR of PATH (relative
  --abort-after N     to the root) after N bytes, with a 426 reply, the first
  --abort-times K     K times (default 1)
  --bad-names         the MLSD listing of RatedCDRs/ also shows names that a
                      client must refuse: '../../etc/passwd', 'a/b.csv', a
                      name with a control character, '..'
  --no-mlsd           answer MLSD and MLST with 500, as old servers do
  --refuse PATH       answer a RETR of PATH with 550
  --log FILE          append each command received (without PASS's argument)
"""

import argparse
import datetime
import logging
import os
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.filesystems import AbstractedFS
from pyftpdlib.handlers import DTPHandler, FTPHandler
from pyftpdlib.log import logger
from pyftpdlib.servers import FTPServer


def make_certificates(folder):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mvnobill test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "ca.pem"), "wb") as f:
        f.write(ca.public_bytes(serialization.Encoding.PEM))
    server_pem = os.path.join(folder, "server.pem")
    with open(server_pem, "wb") as f:
        f.write(leaf.public_bytes(serialization.Encoding.PEM))
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return server_pem


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", default="mvno")
    parser.add_argument("--tls")
    parser.add_argument("--abort")
    parser.add_argument("--abort-after", type=int, default=1000)
    parser.add_argument("--abort-times", type=int, default=1)
    parser.add_argument("--bad-names", action="store_true")
    parser.add_argument("--no-mlsd", action="store_true")
    parser.add_argument("--refuse")
    parser.add_argument("--log")
    args = parser.parse_args()
    password = os.environ["FTP_TEST_PASSWORD"]
    root = os.path.realpath(args.root)
    abort_path = os.path.join(root, args.abort) if args.abort else None
    aborts_left = [args.abort_times]

    def arm(dtp):
        """Whether this data connection is a RETR of the file to abort."""
        file = dtp.file_obj
        if abort_path is None or file is None or dtp.receive or aborts_left[0] <= 0:
            return False
        if os.path.realpath(getattr(file, "name", "")) != abort_path:
            return False
        aborts_left[0] -= 1
        return True

    def aborting(base):
        class Aborting(base):
            _armed = None

            def send(self, data):
                if self._armed is None:
                    self._armed = arm(self)
                if self._armed:
                    remaining = args.abort_after - self.tot_bytes_sent
                    if remaining <= 0:
                        self._resp = ("426 Connection closed; transfer aborted.", logger.info)
                        self.close()
                        return 0
                    data = data[:remaining]
                return super().send(data)

        return Aborting

    class TreeFS(AbstractedFS):
        def format_mlsx(self, basedir, listing, perms, facts, ignore_err=True):
            yield from super().format_mlsx(basedir, listing, perms, facts, ignore_err)
            if args.bad_names and os.path.basename(basedir.rstrip("/")) == "RatedCDRs":
                for name in ("../../etc/passwd", "a/b.csv", "bell\x07.csv", ".."):
                    yield f"type=file;size=10;modify=20261001000000; {name}\r\n".encode()

    if args.tls:
        from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

        base_handler, base_dtp = TLS_FTPHandler, TLS_DTPHandler
    else:
        base_handler, base_dtp = FTPHandler, DTPHandler

    class Handler(base_handler):
        if args.no_mlsd:
            proto_cmds = {
                k: v for k, v in base_handler.proto_cmds.items() if k not in ("MLSD", "MLST")
            }

        def process_command(self, cmd, *a, **kw):
            if args.log:
                shown = cmd if cmd == "PASS" else f"{cmd} {a[0] if a else ''}".rstrip()
                with open(args.log, "a", encoding="utf-8", errors="backslashreplace") as f:
                    f.write(shown + "\n")
            return super().process_command(cmd, *a, **kw)

        def ftp_RETR(self, file):
            if args.refuse and os.path.realpath(file) == os.path.join(root, args.refuse):
                self.respond("550 Permission denied.")
                return None
            return super().ftp_RETR(file)

    if args.tls:
        Handler.certfile = make_certificates(args.tls)
        Handler.tls_control_required = True
        Handler.tls_data_required = True
    authorizer = DummyAuthorizer()
    authorizer.add_user(args.user, password, root, perm="elradfmwMT")
    Handler.authorizer = authorizer
    Handler.abstracted_fs = TreeFS
    Handler.dtp_handler = aborting(base_dtp)
    Handler.use_sendfile = False
    Handler.banner = "mvnobill test server ready."
    Handler.timeout = 60
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    server = FTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.address[1]}", flush=True)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
