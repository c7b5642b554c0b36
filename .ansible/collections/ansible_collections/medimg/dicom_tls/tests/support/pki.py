"""A throwaway test PKI built directly with ``cryptography`` (independent of the collection's
own code, so it can serve as input for every test): root CA, intermediate CA, node certificates.

    pki = TestPKI(tmp_path)
    node = pki.node("node-a")          # node.key, node.cert, node.chain: file paths
    pki.root.cert, pki.inter.cert      # PEM files
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)


@dataclass
class Issued:
    name: str
    key: str  # path of the PEM private key
    cert: str  # path of the PEM certificate
    chain: str  # path of leaf + intermediates
    certificate: x509.Certificate
    private_key: object


def new_key(kind: str = "rsa"):
    if kind == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "medimg test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


class TestPKI:
    __test__ = False  # not a pytest test class

    def __init__(self, directory, key_type: str = "rsa", prefix: str = "Test"):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.key_type = key_type
        self.root = self._issue(prefix + " Root CA", None, ca=True, path_length=None)
        self.inter = self._issue(prefix + " Issuing CA", self.root, ca=True, path_length=0)

    def _write(self, name: str, data: bytes, mode: int = 0o644) -> str:
        path = os.path.join(self.dir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return path

    def _issue(
        self,
        cn: str,
        issuer: Issued | None,
        ca: bool = False,
        path_length: int | None = None,
        sans: list[str] | None = None,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        key_type: str | None = None,
        file_stem: str | None = None,
    ) -> Issued:
        key = new_key(key_type or self.key_type)
        subject = _name(cn)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.certificate.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - datetime.timedelta(hours=1))
            .not_valid_after(not_after or NOW + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        signer = issuer.private_key if issuer else key
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
            ).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            alt = []
            for san in sans if sans is not None else ["DNS:localhost", "IP:127.0.0.1"]:
                kind, _sep, value = san.partition(":")
                alt.append(x509.DNSName(value) if kind == "DNS" else x509.IPAddress(ipaddress.ip_address(value)))
            if alt:
                builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        stem = file_stem or cn.lower().replace(" ", "-")
        key_path = self._write(
            stem + ".key",
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            0o600,
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_path = self._write(stem + ".pem", cert_pem)
        chain = cert_pem
        if issuer is not None and issuer is not getattr(self, "root", None):
            chain += issuer.certificate.public_bytes(serialization.Encoding.PEM)
        chain_path = self._write(stem + ".chain.pem", chain)
        return Issued(cn, key_path, cert_path, chain_path, cert, key)

    def node(self, name: str, **kw) -> Issued:
        """A node certificate (serverAuth + clientAuth) issued by the intermediate CA."""
        return self._issue(name, self.inter, **kw)

    def self_signed(self, name: str, **kw) -> Issued:
        """A root issued by nobody (for 'untrusted CA' cases)."""
        return self._issue(name, None, ca=True, **kw)
