"""A throw-away CA and a server certificate for 127.0.0.1, made at run time with ``openssl``.

The TLS phases serve HTTPS from nginx with this certificate; every client trusts
the CA through ``SSL_CERT_FILE`` (httpx, httpx2 and trillm read it when they
build their one ``ssl.SSLContext``), so no client turns verification off.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TLSFiles:
    ca: Path  # what clients trust
    cert: Path  # the server's certificate (for IP 127.0.0.1 and localhost)
    key: Path


def openssl() -> str | None:
    return shutil.which("openssl")


def make_certificates(folder: Path) -> TLSFiles:
    """A P-256 CA and a server certificate it signed, valid for two days."""
    tool = openssl()
    if tool is None:
        raise RuntimeError("the TLS phases need the openssl command (apt-get install openssl)")
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "srv.key",
                                                       "srv.csr", "srv.pem"))
    ext = folder / "srv.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    steps = [
        [tool, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
         "-subj", "/CN=trillm benchmark CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        [tool, "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1"],
        [tool, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
         "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(ext)],
    ]
    for cmd in steps:
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return TLSFiles(ca=ca, cert=cert, key=key)
