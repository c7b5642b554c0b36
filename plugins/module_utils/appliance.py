# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Vendor appliances (CT and MR consoles, PACS, routers) that Ansible cannot log into.

Three pieces, each plan-then-apply like the rest of the library:

- ``check_csr``: a CSR the appliance produced (PEM or DER), judged against the key policy and the
  subject and subject alternative names the inventory expects;
- ``plan_pkcs12`` / ``apply_pkcs12``: for an appliance that cannot make a CSR, a key generated on
  the CA host, its certificate signed there, both written only inside an encrypted PKCS#12 (mode
  0600) - the one exception to "keys are born where they are used", said so in the result;
- ``plan_export`` / ``apply_export``: the certificate and its CA chain in the forms consoles import
  (PEM, DER, PKCS#7 ``.p7b``).
"""

from __future__ import annotations

import datetime
import functools
import os
from dataclasses import dataclass, field

from ansible_collections.medimg.dicom_tls.plugins.module_utils import cert as certlib
from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, files, ledger
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    atomic_write,
    check_writable_dir,
    make_parent_dirs,
    read_optional,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs7
except ImportError:  # reported by the module (deps.require)
    pass

ENCRYPTIONS = crypto.PKCS12_ENCRYPTIONS  # see crypto.pkcs12_bytes


# ---------------------------------------------------------------- CSR from the appliance


def check_csr(
    data: bytes,
    path: str,
    subject=None,
    subject_alt_names: list | None = None,
    key_types: list | None = None,
    min_key_size: int = 2048,
    curves: list | None = None,
) -> dict:
    """The CSR's facts when it passes; one DicomTlsError naming every failed check otherwise."""
    csr = crypto.load_csr(data, path)  # PEM or DER; the signature is checked there
    key = crypto.key_description(csr.public_key())
    problems = []
    key_types = key_types or ["rsa", "ecdsa"]
    curves = curves or list(certlib.CURVES)
    if key["key_type"] not in key_types:
        problems.append("key type %s is not allowed (allowed: %s)" % (key["key_type"], ", ".join(key_types)))
    elif key["key_type"] == "rsa" and key["key_size"] < min_key_size:
        problems.append("RSA key of %d bits is under the %d-bit minimum" % (key["key_size"], min_key_size))
    elif key["key_type"] == "ecdsa" and key.get("curve") not in curves:
        problems.append("curve %s is not allowed (allowed: %s)" % (key.get("curve"), ", ".join(curves)))
    if subject:
        want = crypto.parse_subject(subject)
        if csr.subject != want:
            problems.append(
                "subject is %s, the inventory expects %s" % (crypto.name_text(csr.subject), crypto.name_text(want))
            )
    have_sans = crypto.cert_sans(csr)
    if subject_alt_names is not None:
        want_sans = crypto.san_text(crypto.parse_sans(subject_alt_names))
        if sorted(have_sans) != sorted(want_sans):
            problems.append("subject_alt_names are %s, the inventory expects %s" % (have_sans, want_sans))
    if problems:
        raise DicomTlsError("CSR refused: " + "; ".join(problems), path)
    out = {
        "csr": crypto.csr_pem(csr).decode("ascii"),
        "subject": crypto.name_text(csr.subject),
        "subject_alt_names": have_sans,
        "encoding": "pem" if data.lstrip().startswith(b"-----BEGIN") else "der",
    }
    out.update(key)
    return out


# ---------------------------------------------------------------- PKCS#12 made on the CA host


@dataclass
class Pkcs12Spec:
    path: str
    passphrase: str
    subject: object
    issuer_cert_path: str
    issuer_privatekey_path: str
    certificate_path: str | None = None
    subject_alt_names: list | None = None
    encryption: str = "modern"
    usage: str = "node"
    key_type: str = "rsa"
    key_size: int = 3072
    curve: str = "secp256r1"
    issuer_privatekey_passphrase: str | None = None
    issuer_chain_path: str | None = None
    valid_days: int | None = None
    renew_before_days: int | None = None
    database: str | None = None
    force: bool = False


@dataclass
class Pkcs12Plan:
    spec: Pkcs12Spec
    actions: list = field(default_factory=list)
    cert: object = None  # the certificate in the PKCS#12 now
    key: object = None  # the key in the PKCS#12 now (never leaves this process)
    cas: list = field(default_factory=list)
    inner: certlib.Plan | None = None  # issuer, subject and SANs, for signing

    def has(self, role: str) -> bool:
        return any(a.role == role for a in self.actions)


def notice(path: str, encryption: str) -> str:
    return (
        "The private key was generated on the CA host and exists only inside %s (encrypted, %s, mode 0600): "
        "an exception to 'keys are born where they are used', for an appliance that cannot make a CSR. "
        "Hand the PKCS#12 to the appliance over a trusted channel and delete every other copy." % (path, encryption)
    )


def plan_pkcs12(spec: Pkcs12Spec, now: datetime.datetime | None = None) -> Pkcs12Plan:
    if spec.encryption not in ENCRYPTIONS:
        raise DicomTlsError("pkcs12_encryption must be modern or legacy")
    if not spec.passphrase:
        raise DicomTlsError("a PKCS#12 holding a key made on the CA host needs a passphrase", spec.path)
    shared = (
        "usage subject key_type key_size curve valid_days renew_before_days issuer_cert_path issuer_privatekey_path"
        " issuer_privatekey_passphrase issuer_chain_path"
    ).split()
    cspec = certlib.CertSpec(
        path=spec.certificate_path or spec.path,
        subject_alt_names=spec.subject_alt_names or [],
        **{f: getattr(spec, f) for f in shared},
    )
    certlib._validate(cspec)
    inner = certlib.Plan(spec=cspec, mode="issue")
    certlib._load_issuer(cspec, inner)
    inner.subject = crypto.parse_subject(spec.subject)
    inner.sans = crypto.parse_sans(spec.subject_alt_names or [])
    if now is not None:
        inner.now = now
    p = Pkcs12Plan(spec=spec, inner=inner)
    for path in (spec.path, spec.certificate_path):
        if path:
            check_writable_dir(path)
    if spec.database:
        ledger.check(spec.database)

    def store(action, reason):
        p.actions.append(certlib.Action("pkcs12", spec.path, action, reason))

    data = read_optional(spec.path)
    if data is None:
        store("created", "no PKCS#12 yet")
    else:
        p.key, p.cert, _cas = crypto.load_pkcs12(data, spec.passphrase) or (None, None, [])
        if p.cert is None or p.key is None:
            store("renewed", "it cannot be opened with the passphrase or holds no key")
        elif reasons := _renewal_reasons(p):
            store("renewed", "; ".join(reasons))
        elif crypto.pkcs12_encryption(data) != spec.encryption:
            store("updated", "encryption changed to %s" % spec.encryption)
    if spec.certificate_path and not p.has("pkcs12"):
        if read_optional(spec.certificate_path) != crypto.cert_pem(p.cert):
            p.actions.append(certlib.Action("certificate", spec.certificate_path, "updated", "copy differs"))
    if spec.database and not p.has("pkcs12") and p.cert is not None:
        p.actions += certlib.unrecorded(spec.database, ledger.read(spec.database), p.cert)
    return p


def _renewal_reasons(p: Pkcs12Plan) -> list[str]:
    spec, inner, cert = p.spec, p.inner, p.cert
    reasons = []
    if spec.force:
        reasons.append("force")
    if crypto.public_key_der(cert) != crypto.public_key_der(p.key):
        reasons.append("the certificate does not match the key")
    if not crypto.issued_by(cert, inner.issuer_cert):
        reasons.append("it is not signed by the issuer %s (CA replaced)" % crypto.name_text(inner.issuer_cert.subject))
    reasons += certlib.identity_changes(cert, inner.subject, inner.sans)
    if certlib._have_params(p.key) != certlib._key_params(inner.spec):
        reasons.append("key type changed to %s" % certlib._key_params(inner.spec))
    reasons += certlib.usage_differences(cert, spec.usage)
    due = certlib.expiry_due(inner.spec, cert, inner.now)
    return reasons + (["it " + due] if due else [])


def locked(spec: Pkcs12Spec, enabled: bool = True):
    """files.locked_group for the key store and its certificate copy (check mode: no lock)."""
    return files.locked_group(spec.path, [spec.path, spec.certificate_path], enabled)


def add_recovered(p: Pkcs12Plan, recovered: list[str]) -> None:
    p.actions += certlib.recovered_actions(recovered)


def _write(writes: list[tuple[str, bytes, int]], anchor: str) -> None:
    """The folders on the way first (0700 above a key store, like a private key's), then the files
    together (files.write_group: a new generation when they live in the key store's generation store)."""
    for path, _data, mode in writes:
        make_parent_dirs(path, 0o700 if mode == 0o600 else 0o755)
    files.write_group(anchor, writes)


def apply_pkcs12(p: Pkcs12Plan) -> x509.Certificate:
    """Carry out the plan; returns the certificate the PKCS#12 holds afterwards."""
    spec, inner = p.spec, p.inner
    cas = [inner.issuer_cert] if not crypto.is_self_signed(inner.issuer_cert) else []
    cas += inner.issuer_chain
    if p.has("pkcs12") and p.actions[0].action in ("created", "renewed"):
        inner.issuer_key = certlib._signing_key(spec.issuer_privatekey_path, spec.issuer_privatekey_passphrase)
        key = certlib.generate_key(inner.spec)

        def deliver(cert):  # key store and certificate move together (files.write_group)
            writes = [(spec.path, crypto.pkcs12_bytes(key, cert, cas, spec.passphrase, spec.encryption), 0o600)]
            if spec.certificate_path:
                writes.append((spec.certificate_path, crypto.cert_pem(cert), 0o644))
            _write(writes, spec.path)

        sign = functools.partial(certlib._sign_certificate, inner, key.public_key(), inner.issuer_key)
        p.cert, p.key = ledger.issue(spec.database, sign, deliver), key
        return p.cert
    if p.has("pkcs12"):  # same key and certificate, new encryption
        data = crypto.pkcs12_bytes(p.key, p.cert, cas, spec.passphrase, spec.encryption)
        _write([(spec.path, data, 0o600)], spec.path)
    if p.has("certificate"):
        _write([(spec.certificate_path, crypto.cert_pem(p.cert), 0o644)], spec.path)
    if p.has("database"):
        with ledger.update(spec.database) as book:
            book.record(p.cert)
    return p.cert


# ---------------------------------------------------------------- exports consoles import

# format -> file name suffix: NAME.pem (certificate), NAME.der, NAME.chain.pem (certificate, issuing
# CA, root), NAME.p7b (the same as DER PKCS#7), NAME.ca.pem (the CAs the appliance trusts).
EXPORT_SUFFIXES = {"pem": ".pem", "der": ".der", "chain_pem": ".chain.pem", "p7b": ".p7b", "ca_pem": ".ca.pem"}
EXPORT_FORMATS = tuple(EXPORT_SUFFIXES)


def export_files(directory: str, name: str) -> dict:
    """File name per format (EXPORT_SUFFIXES)."""
    return {fmt: os.path.join(directory, name) + suffix for fmt, suffix in EXPORT_SUFFIXES.items()}


def export_contents(certificate_pem: str, ca_pem: str) -> dict:
    leaf = crypto.load_certificate(certificate_pem.encode("utf-8"), "certificate_content")
    cas = crypto.load_certificates(ca_pem.encode("utf-8"), "ca_content")
    cas = [c for c in cas if c != leaf]
    for c in cas:
        if not crypto.is_ca(c):
            raise DicomTlsError("ca_content holds %s, which is not a CA" % crypto.name_text(c.subject))
    if not any(crypto.issued_by(leaf, c) for c in cas):
        raise DicomTlsError("the certificate %s is not issued by any CA of ca_content" % crypto.name_text(leaf.subject))
    # Leaf, then issuer up to the root, as consoles expect a chain.
    ordered, current, rest = [leaf], leaf, list(cas)
    while True:
        nxt = next((c for c in rest if c.subject == current.issuer and crypto.issued_by(current, c)), None)
        if nxt is None or nxt is current:
            break
        ordered.append(nxt)
        rest.remove(nxt)
        if crypto.is_self_signed(nxt):
            break
        current = nxt
    ordered += rest
    return {
        "pem": crypto.cert_pem(leaf),
        "der": crypto.der(leaf),
        "chain_pem": b"".join(crypto.cert_pem(c) for c in ordered),
        "p7b": pkcs7.serialize_certificates(ordered, serialization.Encoding.DER),
        "ca_pem": b"".join(crypto.cert_pem(c) for c in ordered[1:]),
        "_leaf": leaf,
    }


def plan_export(directory: str, name: str, certificate_pem: str, ca_pem: str) -> tuple[list, dict, dict]:
    if not os.path.isdir(directory):
        raise DicomTlsError("export directory does not exist", directory)
    files = export_files(directory, name)
    contents = export_contents(certificate_pem, ca_pem)
    actions = []
    for fmt in EXPORT_FORMATS:
        have = read_optional(files[fmt])
        if have != contents[fmt]:
            created = have is None
            reason = "no %s file yet" % fmt if created else "content differs"
            actions.append(certlib.Action(fmt, files[fmt], "created" if created else "updated", reason))
    return actions, files, contents


def apply_export(actions: list, contents: dict, mode: int = 0o644) -> None:
    for a in actions:
        atomic_write(a.path, contents[a.role], mode)
