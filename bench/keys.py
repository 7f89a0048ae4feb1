"""Throwaway key material for the encrypted bench cases, made at run time.

Everything lands in a private directory (0700) inside the run's temporary directory,
which the run deletes afterwards; private keys are created 0600 (``O_EXCL``, so an
existing file is never reused or widened). Nothing here prints a key.

- an OpenVPN TLS PKI: a CA, a server and a client certificate (ECDSA P-256, one day),
  made with the ``cryptography`` package the project already depends on;
- WireGuard key pairs from ``wg genkey`` / ``wg pubkey``;
- ESP keys for ``l2tpv3 add sa ... key @FILE``: ``0xHEX`` of key plus salt.
"""

from __future__ import annotations

import datetime
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def private_dir(path: Path) -> Path:
    """``path`` made (or tightened) to 0700."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)
    return path


def write_private(path: Path, data: bytes) -> Path:
    """A new file readable by its owner only; refuses to overwrite one."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    # The umask can only narrow the mode; make it exactly 0600 whatever it was.
    os.chmod(path, PRIVATE_FILE)
    return path


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    cn: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    usage: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=usage is None, path_length=None), critical=True)
    )
    if usage is None:
        b = b.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )  # fmt: skip
    else:
        # `--remote-cert-tls server` checks the server's extended key usage.
        b = b.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False,
                          key_agreement=True, key_cert_sign=False, crl_sign=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)  # fmt: skip
    return b.sign(issuer_key, hashes.SHA256())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_pki(directory: Path) -> Pki:
    """A throwaway CA and one server and one client certificate signed by it."""
    d = private_dir(directory)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("l2tpv3 bench throwaway CA")
    ca = _cert("l2tpv3 bench throwaway CA", ca_key, ca_name, ca_key, None)
    out: dict[str, Path] = {}
    for role, usage in (("server", ExtendedKeyUsageOID.SERVER_AUTH),
                        ("client", ExtendedKeyUsageOID.CLIENT_AUTH)):  # fmt: skip
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(f"bench-{role}", key, ca_name, ca_key, usage)
        out[f"{role}_key"] = write_private(d / f"{role}.key", _key_pem(key))
        out[f"{role}_cert"] = d / f"{role}.crt"
        out[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    # The CA's key is not needed once the two certificates are signed: never written.
    return Pki(ca=d / "ca.crt", **out)


def wg_keypair(directory: Path, name: str) -> tuple[Path, str]:
    """(private key file, public key) from ``wg genkey`` and ``wg pubkey``."""
    d = private_dir(directory)
    priv = subprocess.run(["wg", "genkey"], capture_output=True, check=True).stdout
    path = write_private(d / f"{name}.wgkey", priv)
    pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, check=True)
    return path, pub.stdout.decode().strip()


def esp_key(directory: Path, name: str, key_bytes: int) -> Path:
    """A file holding ``0xHEX`` of ``key_bytes`` random bytes (for rfc4106: key + 4-byte
    salt, so 20 for AES-128), as ``l2tpv3 genkey`` prints and ``key @FILE`` reads."""
    d = private_dir(directory)
    return write_private(
        d / f"{name}.key", b"0x" + secrets.token_bytes(key_bytes).hex().encode() + b"\n"
    )
