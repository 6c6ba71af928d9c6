"""TLS for the SASL_SSL listener: a self-signed CA and a server certificate, made with ``openssl``.

:func:`ensure_certificates` writes them into the broker's data directory, once: ``tls-ca.pem``
(the CA certificate clients verify the broker with) and ``tls-server.pem`` (Kafka's PEM
keystore: the server's key and its certificate for 127.0.0.1/localhost).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from standins.kafka.errors import BrokerError

CA_FILE = "tls-ca.pem"
SERVER_KEYSTORE_FILE = "tls-server.pem"
CERT_DAYS = 365
SERVER_CERT_EXTENSIONS = (
    "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    "basicConstraints=critical,CA:FALSE\n"
    "keyUsage=critical,digitalSignature,keyEncipherment\n"
    "extendedKeyUsage=serverAuth\n"
    "authorityKeyIdentifier=keyid,issuer\n"
)


def ensure_certificates(directory: Path) -> None:
    """Create a self-signed CA and a server keystore for 127.0.0.1/localhost, unless present.

    ``CA_FILE`` holds the CA certificate, ``SERVER_KEYSTORE_FILE`` the server's unencrypted
    PKCS#8 key followed by its certificate (Kafka's PEM keystore). The CA's key is deleted.
    """
    if (directory / CA_FILE).exists() and (directory / SERVER_KEYSTORE_FILE).exists():
        return
    work = directory / "tls-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-noenc",
            "-days",
            str(CERT_DAYS),
            "-subj",
            "/CN=standins-kafka-ca",
            "-keyout",
            str(work / "ca.key"),
            "-out",
            str(work / "ca.pem"),
        )
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-noenc",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(work / "server.key"),
            "-out",
            str(work / "server.csr"),
        )
        (work / "server.ext").write_text(SERVER_CERT_EXTENSIONS)
        _openssl(
            "x509",
            "-req",
            "-in",
            str(work / "server.csr"),
            "-CA",
            str(work / "ca.pem"),
            "-CAkey",
            str(work / "ca.key"),
            "-CAcreateserial",
            "-days",
            str(CERT_DAYS),
            "-extfile",
            str(work / "server.ext"),
            "-out",
            str(work / "server.crt"),
        )
        keystore = (work / "server.key").read_text() + (work / "server.crt").read_text()
        (directory / SERVER_KEYSTORE_FILE).write_text(keystore)
        (directory / SERVER_KEYSTORE_FILE).chmod(0o600)
        shutil.copyfile(work / "ca.pem", directory / CA_FILE)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _openssl(*arguments: str) -> None:
    """Run ``openssl`` with ``arguments``; raise BrokerError with its output if it fails."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError(
            "openssl is not on PATH; it is needed for the SASL_SSL listener's certificates"
        )
    result = subprocess.run([openssl, *arguments], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(
            f"openssl {arguments[0]} failed (exit {result.returncode}):\n{result.stderr}"
        )
