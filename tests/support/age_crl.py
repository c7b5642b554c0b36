"""Make a CRL due for refresh without waiting: re-sign it with the same CRL Number, revoked entries
and extensions, but with a nextUpdate only HOURS away (as if time had moved on).

    python tests/support/age_crl.py CRL ISSUER_CERT ISSUER_KEY --hours-left 6
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization


def age(crl_path: str, issuer_cert: str, issuer_key: str, hours_left: float) -> None:
    with open(crl_path, "rb") as fh:
        crl = x509.load_pem_x509_crl(fh.read())
    with open(issuer_key, "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), None)
    with open(issuer_cert, "rb") as fh:
        issuer = x509.load_pem_x509_certificate(fh.read())
    now = datetime.datetime.now(datetime.UTC)
    next_update = now + datetime.timedelta(hours=hours_left)
    last_update = next_update - (crl.next_update_utc - crl.last_update_utc)
    builder = x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
    builder = builder.last_update(min(last_update, now)).next_update(next_update)
    for ext in crl.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    for revoked in crl:
        builder = builder.add_revoked_certificate(revoked)
    new = builder.sign(key, hashes.SHA256())
    tmp = crl_path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(new.public_bytes(serialization.Encoding.PEM))
    os.replace(tmp, crl_path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("crl")
    p.add_argument("issuer_cert")
    p.add_argument("issuer_key")
    p.add_argument("--hours-left", type=float, default=6.0)
    a = p.parse_args(argv)
    age(a.crl, a.issuer_cert, a.issuer_key, a.hours_left)
    return 0


if __name__ == "__main__":
    sys.exit(main())
