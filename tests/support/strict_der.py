"""Root CAs whose encoding OpenSSL 3 reads but a strict DER parser (cryptography's) may refuse, each
with a client certificate it signed, for judging the trust store against the readers.

Each case is one root built byte by byte (support.der); the verdict is never written here: tests ask
the oracle (``openssl x509 -noout``, ``openssl verify -CApath`` on an ``openssl rehash`` directory,
storescp +cd) and hold the collection to the same answer.

    cases = make_cases(tmp_path)      # [Case(name, ca, leaf, key), ...] PEM paths
    openssl_verdict(case, tmp_path)   # (True, "") or (False, "error 20 at 0 depth lookup: ...")
"""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from support.der import (
    BMP,
    CA_EXTENSIONS,
    LEAF_EXTENSIONS,
    OID_CN,
    OID_O,
    PRINTABLE,
    T61,
    UTF8,
    certificate,
    extension,
    name_der,
    new_key,
    oid,
    tlv,
    utc_time,
)

BC, KU = CA_EXTENSIONS
_NOW = datetime.datetime.now(datetime.UTC)
_GARBAGE = b"\x05\x00"  # a NULL where the extension's structure belongs
NS, PCI = "2.16.840.1.113730.1.1", "1.3.6.1.5.5.7.1.14"  # nsCertType, proxyCertInfo
IP_BLOCKS, AS_IDS = "1.3.6.1.5.5.7.1.7", "1.3.6.1.5.5.7.1.8"  # RFC 3779 sbgp-ipAddrBlock, sbgp-autonomousSysNum
NS_CA = tlv(0x03, b"\x01\x06")  # nsCertType sslCA, emailCA
PROXY_ANY = "1.3.6.1.5.5.7.21.1"  # id-ppl-inheritAll
IP_10 = tlv(0x30, tlv(0x30, tlv(0x04, b"\x00\x01") + tlv(0x30, tlv(0x03, b"\x00\x0a"))))  # IPv4 10.0.0.0/8


def _bc(critical=b"\xff", ca=b"\xff"):
    return extension("2.5.29.19", tlv(0x30, tlv(0x01, ca)), critical)


# name -> keyword arguments of support.der.certificate for the root (its subject "O=Hospital, CN=<name>"
# unless "name" gives raw name RDNs)
CASES = {
    # serials RFC 5280 forbids, which OpenSSL reads
    "negative-serial": dict(serial=b"\xfe"),
    "zero-serial": dict(serial=b"\x00"),
    "serial-of-21-bytes": dict(serial=b"\x7f" * 21),
    "serial-with-padding-byte": dict(serial=b"\x00\x01"),
    # versions
    "v1-with-extensions": dict(version=None),
    "version-2-with-extensions": dict(version=b"\x01"),
    "version-4": dict(version=b"\x03"),
    "v1-version-encoded": dict(version=b"\x00", extensions=()),
    # BER where DER is required
    "boolean-true-as-01": dict(extensions=(_bc(critical=b"\x01"), KU)),
    "critical-false-encoded": dict(extensions=(_bc(critical=b"\x00"), KU)),
    "ca-true-as-01-in-extension": dict(extensions=(_bc(ca=b"\x01"), KU)),
    "long-form-length": dict(length_form=b"\x81\x01", serial=b"\x07"),
    # names
    "printable-with-underscore": dict(name=[[(OID_O, PRINTABLE, "Hospital_IT")], [(OID_CN, PRINTABLE, "*Root*")]]),
    "bmpstring-name": dict(name=[[(OID_O, BMP, "Hospital")], [(OID_CN, BMP, "BMP Root")]]),
    "t61string-latin1-name": dict(name=[[(OID_O, T61, b"Kr\xe4nkenhaus")], [(OID_CN, T61, "T61 Root")]]),
    # extensions
    "duplicate-keyusage": dict(extensions=(BC, KU, KU)),
    "empty-subjectkeyidentifier": dict(extensions=(BC, KU, extension("2.5.29.14", b"", None))),
    "garbage-authoritykeyidentifier": dict(extensions=(BC, KU, extension("2.5.29.35", b"\x04\x01\x00", None))),
    "garbage-subjectaltname": dict(extensions=(BC, KU, extension("2.5.29.17", _GARBAGE, None))),
    "garbage-certificatepolicies": dict(extensions=(BC, KU, extension("2.5.29.32", _GARBAGE, None))),
    "garbage-authorityinfoaccess": dict(extensions=(BC, KU, extension("1.3.6.1.5.5.7.1.1", _GARBAGE, None))),
    "duplicate-private-extension": dict(
        extensions=(
            BC,
            KU,
            extension("1.3.6.1.4.1.99999.1", _GARBAGE, None),
            extension("1.3.6.1.4.1.99999.1", b"", None),
        )
    ),
    "critical-private-extension": dict(extensions=(BC, KU, extension("1.3.6.1.4.1.99999.2", tlv(0x05, b"")))),
    "critical-subjectkeyidentifier": dict(extensions=(BC, KU, extension("2.5.29.14", tlv(0x04, b"\x01" * 20)))),
    "critical-certificatepolicies": dict(
        extensions=(BC, KU, extension("2.5.29.32", tlv(0x30, tlv(0x30, oid("2.5.29.32.0")))))
    ),
    # extensions OpenSSL decodes when it first looks at a certificate and cryptography does not decode
    "garbage-nscerttype": dict(extensions=(BC, KU, extension(NS, _GARBAGE, None))),
    "nscerttype-unused-bits-9": dict(extensions=(BC, KU, extension(NS, tlv(0x03, b"\x09\x06"), None))),
    "duplicate-nscerttype": dict(extensions=(BC, KU, extension(NS, NS_CA, None), extension(NS, NS_CA, None))),
    "nscerttype-with-trailing-bytes": dict(extensions=(BC, KU, extension(NS, NS_CA + _GARBAGE, None))),
    "garbage-proxycertinfo": dict(extensions=(BC, KU, extension(PCI, _GARBAGE, None))),
    "proxycertinfo-on-a-ca": dict(extensions=(BC, KU, extension(PCI, tlv(0x30, tlv(0x30, oid(PROXY_ANY))), None))),
    "garbage-ipaddrblock": dict(extensions=(BC, KU, extension(IP_BLOCKS, _GARBAGE, None))),
    "ipaddrblock-10-0-0-0-8": dict(extensions=(BC, KU, extension(IP_BLOCKS, IP_10, None))),
    "ipaddrblock-family-not-octets": dict(
        extensions=(BC, KU, extension(IP_BLOCKS, tlv(0x30, tlv(0x30, tlv(0x02, b"\x01") + tlv(0x05, b""))), None))
    ),
    "garbage-asidentifiers": dict(extensions=(BC, KU, extension(AS_IDS, _GARBAGE, None))),
    "asidentifiers-as-64512": dict(
        extensions=(BC, KU, extension(AS_IDS, tlv(0x30, tlv(0xA0, tlv(0x30, tlv(0x02, b"\x00\xfc\x00")))), None))
    ),
    # dates
    "utctime-without-seconds": dict(not_before=utc_time(_NOW - datetime.timedelta(hours=1), "%y%m%d%H%MZ")),
    "utctime-with-offset": dict(not_after=utc_time(_NOW + datetime.timedelta(days=9), "%y%m%d%H%M%S+0100")),
    "generalizedtime-fraction": dict(not_before=utc_time(_NOW - datetime.timedelta(hours=1), "%Y%m%d%H%M%S.5Z", 0x18)),
}


@dataclass
class Case:
    name: str
    ca: str  # PEM of the root's bytes exactly as built
    leaf: str  # client/server certificate it signed (serverAuth, clientAuth, DNS:localhost, IP:127.0.0.1)
    key: str  # the leaf's key
    ca_key: str  # the root's key


def pem(der: bytes, label: str = "CERTIFICATE") -> bytes:
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    body = b"\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), body, label.encode())


def make_cases(directory, names=None) -> list[Case]:
    out = []
    for name in names or CASES:
        kw = dict(CASES[name])
        subject = name_der(kw.pop("name", [[(OID_O, UTF8, "Hospital")], [(OID_CN, UTF8, "Root " + name)]]))
        ca_key, leaf_key = new_key(), new_key()
        ca = certificate(subject, key=ca_key, signer=ca_key, **kw)
        leaf_name = name_der([[(OID_O, UTF8, "Hospital")], [(OID_CN, UTF8, "node " + name)]])
        leaf = certificate(leaf_name, subject, key=leaf_key, signer=ca_key, extensions=LEAF_EXTENSIONS, serial=b"\x10")
        base = os.path.join(str(directory), name)
        key_pem, ca_key_pem = (
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
            for k in (leaf_key, ca_key)
        )
        files = {".ca.pem": pem(ca), ".leaf.pem": pem(leaf), ".key.pem": key_pem, ".ca-key.pem": ca_key_pem}
        for suffix, data in files.items():
            with open(base + suffix, "wb") as fh:
                fh.write(data)
        out.append(Case(name, *(base + suffix for suffix in (".ca.pem", ".leaf.pem", ".key.pem", ".ca-key.pem"))))
    return out


def openssl_rehash_dir(cases: list[Case], directory) -> str:
    """A directory with the roots as ``openssl rehash`` names them (only those openssl can read)."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    for case in cases:
        with open(case.ca, "rb") as src, open(os.path.join(directory, case.name + ".pem"), "wb") as dst:
            dst.write(src.read())
    subprocess.run(["openssl", "rehash", directory], capture_output=True, check=False)
    return directory


def openssl_verdict(case: Case, directory) -> tuple[bool, str]:
    """OpenSSL's verdict on the root: it loads (openssl x509 -noout) and a client it signed verifies
    against a hashed directory holding it (openssl verify -CApath, as dcmtk's +cd reads it)."""
    loads = subprocess.run(["openssl", "x509", "-noout", "-in", case.ca], capture_output=True, text=True, check=False)
    if loads.returncode != 0:
        return False, "openssl x509 cannot load it"
    capath = openssl_rehash_dir([case], os.path.join(str(directory), "oracle-" + case.name))
    proc = subprocess.run(
        ["openssl", "verify", "-CApath", capath, case.leaf], capture_output=True, text=True, check=False
    )
    text = proc.stdout + proc.stderr
    why = next((line.strip() for line in text.splitlines() if line.startswith("error ")), text.strip()[-200:])
    return proc.returncode == 0, "" if proc.returncode == 0 else why
