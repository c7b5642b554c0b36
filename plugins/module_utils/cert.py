# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dicom_cert's library: keys, CSRs, CA and node certificates, renewal decisions.

Plan, then apply: ``plan(spec)`` reads what is on disk and returns the actions that bring it to
the desired state (with a reason each), without writing anything; ``apply(plan)`` carries them out.
Check mode is ``plan`` alone; ``changed`` is "the plan is not empty".
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import os
from dataclasses import dataclass, field

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, files, reports
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import (
    backup_copy,
    check_writable_dir,
    make_parent_dirs,
    read_bytes,
    read_optional,
)

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID
except ImportError:  # reported by the module (deps.require)
    pass

USAGES = ("root_ca", "intermediate_ca", "node", "server", "client")
DEFAULT_VALID_DAYS = {"root_ca": 3650, "intermediate_ca": 1825, "node": 365, "server": 365, "client": 365}
CURVES = ("secp256r1", "secp384r1", "secp521r1")
BACKDATE = datetime.timedelta(minutes=5)  # clock skew; dcmsign needs notBefore strictly in the past


@dataclass
class CertSpec:
    """What the caller wants (the module's options)."""

    state: str = "present"
    path: str | None = None
    privatekey_path: str | None = None
    privatekey_passphrase: str | None = None
    csr_path: str | None = None
    csr_content: str | None = None
    certificate_content: str | None = None
    chain_path: str | None = None
    usage: str = "node"
    subject: object = None
    subject_alt_names: list | None = None
    key_type: str = "rsa"
    key_size: int = 3072
    curve: str = "secp256r1"
    issuer_cert_path: str | None = None
    issuer_privatekey_path: str | None = None
    issuer_privatekey_passphrase: str | None = None
    issuer_chain_path: str | None = None
    valid_days: int | None = None
    renew_before_days: int | None = None
    force: bool = False
    regenerate_key: bool = False
    format: str = "pem"
    pkcs12_path: str | None = None
    pkcs12_passphrase: str | None = None
    pkcs12_encryption: str = "modern"
    backup: bool = False
    database: str | None = None  # OpenSSL ca's index.txt, where issued certificates are recorded


def Action(role: str, path: str, action: str, reason: str) -> reports.Action:  # noqa: N802 (a constructor)
    """A step of the plan (reports.Action) for one of the spec's files; ``role`` is privatekey, csr,
    certificate, chain, pkcs12 or database (which file it is, for apply), ``action`` created, renewed,
    regenerated, updated, removed or attributes_changed."""
    return reports.Action(path, action, reason, role=role)


@dataclass
class Plan:
    spec: CertSpec
    mode: str
    actions: list[reports.Action] = field(default_factory=list)
    key: object = None  # current private key (None when it will be generated or is not local)
    csr: x509.CertificateSigningRequest | None = None  # CSR to sign (CA side)
    cert: x509.Certificate | None = None  # current certificate at path
    issuer_cert: x509.Certificate | None = None
    issuer_key: object = None
    issuer_chain: list = field(default_factory=list)
    issuer_roots: list = field(default_factory=list)
    install: list = field(default_factory=list)  # certificate_content: leaf + intermediates
    subject: x509.Name | None = None
    sans: list | None = None
    now: datetime.datetime = field(default_factory=crypto.utcnow)
    warnings: list[str] = field(default_factory=list)
    # check mode only: an input an earlier task of the play would create does not exist yet
    # (the issuer, the key); the plan then predicts from what it knows instead of failing.
    check_mode: bool = False
    pending: str | None = None

    def has(self, role: str) -> bool:
        return any(a.role == role for a in self.actions)


# ---------------------------------------------------------------- desired contents


def _hash_for(key) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384() if key.curve.key_size <= 384 else hashes.SHA512()
    return hashes.SHA256()


def usage_extensions(usage: str, public_key) -> list[tuple[x509.ExtensionType, bool]]:
    """basicConstraints, keyUsage and extendedKeyUsage that dcmtk, Orthanc and OpenSSL expect."""
    if usage in ("root_ca", "intermediate_ca"):
        return [
            (x509.BasicConstraints(ca=True, path_length=None if usage == "root_ca" else 0), True),
            (x509.KeyUsage(True, False, False, False, False, True, True, False, False), True),
        ]
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    eku = {
        "node": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        "server": [ExtendedKeyUsageOID.SERVER_AUTH],
        "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
    }[usage]
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(True, False, is_rsa, False, False, False, False, False, False), True),
        (x509.ExtendedKeyUsage(eku), False),
    ]


def usage_differences(cert: x509.Certificate, usage: str) -> list[str]:
    out = []
    for wanted, _critical in usage_extensions(usage, cert.public_key()):
        have = crypto.extension(cert, type(wanted))
        if have != wanted:
            out.append("%s is %s, %s wants %s" % (type(wanted).__name__, _short(have), usage, _short(wanted)))
    missing = [c for c in (x509.SubjectKeyIdentifier, x509.AuthorityKeyIdentifier) if crypto.extension(cert, c) is None]
    return out + ["%s is missing" % cls.__name__ for cls in missing]


def identity_changes(obj, subject: x509.Name, sans: list, usage: str | None = None) -> list[str]:
    """Why a certificate (with ``usage``) or CSR no longer says what is asked: subject, subjectAltNames,
    and for a certificate its usage extensions."""
    out = []
    if obj.subject != subject:
        out.append("subject changed from %s to %s" % (crypto.name_text(obj.subject), crypto.name_text(subject)))
    have, want = crypto.cert_sans(obj), crypto.san_text(sans)
    if sorted(have) != sorted(want):
        out.append("subject_alt_names changed from %s to %s" % (have, want))
    return out + (usage_differences(obj, usage) if usage else [])


def expiry_due(spec: CertSpec, cert: x509.Certificate, now: datetime.datetime) -> str | None:
    """'expires in N days (renew_before_days is M)' when ``cert`` is inside its renewal window, else None."""
    renew_before_days = _renew_before_days(spec, cert)
    left = crypto.not_valid_after(cert) - now
    if left >= datetime.timedelta(days=renew_before_days):
        return None
    return "expires in %d days (renew_before_days is %d)" % (max(left.days, 0), renew_before_days)


def _short(ext) -> str:
    if ext is None:
        return "absent"
    if isinstance(ext, x509.BasicConstraints):
        return "CA:%s%s" % (ext.ca, "" if ext.path_length is None else ",pathlen:%d" % ext.path_length)
    if isinstance(ext, x509.ExtendedKeyUsage):
        return ",".join(sorted(o._name for o in ext))
    if isinstance(ext, x509.KeyUsage):
        names = ["digital_signature", "key_encipherment", "key_cert_sign", "crl_sign"]
        return ",".join(n for n in names if getattr(ext, n))
    return str(ext)


def _key_params(spec: CertSpec) -> str:
    return "rsa %d" % spec.key_size if spec.key_type == "rsa" else "ecdsa %s" % spec.curve


def _have_params(key) -> str:
    d = crypto.key_description(key)
    return "rsa %d" % d["key_size"] if d["key_type"] == "rsa" else "%s %s" % (d["key_type"], d["curve"])


def generate_key(spec: CertSpec):
    if spec.key_type == "ecdsa":
        return ec.generate_private_key(getattr(ec, spec.curve.upper())())
    return rsa.generate_private_key(public_exponent=65537, key_size=spec.key_size)


def key_pem(key, passphrase: str | None) -> bytes:
    enc = (
        serialization.BestAvailableEncryption(passphrase.encode("utf-8"))
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


# ---------------------------------------------------------------- validation and reading


def _mode(spec: CertSpec) -> str:
    if spec.state == "absent":
        return "absent"
    if spec.state == "csr":
        if not (spec.privatekey_path and spec.csr_path):
            raise DicomTlsError("state=csr needs privatekey_path and csr_path")
        return "csr"
    if not spec.path:
        raise DicomTlsError("state=present needs path (where the certificate is written)")
    if spec.certificate_content:
        if not spec.privatekey_path:
            raise DicomTlsError("certificate_content is installed next to its key: privatekey_path is required")
        return "install"
    if not spec.privatekey_path:
        if not (spec.csr_path or spec.csr_content):
            raise DicomTlsError("give privatekey_path (key on this host) or csr_path/csr_content (sign a CSR)")
        if not spec.issuer_cert_path:
            raise DicomTlsError("signing a CSR needs issuer_cert_path and issuer_privatekey_path")
        return "sign_csr"
    if spec.usage == "root_ca" and spec.issuer_cert_path:
        raise DicomTlsError("a root_ca is self-signed: do not give issuer_cert_path")
    if spec.usage == "intermediate_ca" and not spec.issuer_cert_path:
        raise DicomTlsError("an intermediate_ca needs issuer_cert_path and issuer_privatekey_path")
    return "issue" if spec.issuer_cert_path else "self_signed"


def _validate(spec: CertSpec) -> None:
    if spec.usage not in USAGES:
        raise DicomTlsError("usage must be one of %s" % ", ".join(USAGES))
    if spec.key_type == "rsa" and spec.key_size < 2048:
        raise DicomTlsError("key_size %d is too small: dcmtk 3.6.8 refuses RSA keys under 2048 bits" % spec.key_size)
    if spec.key_type == "ecdsa" and spec.curve not in CURVES:
        raise DicomTlsError("curve must be one of %s" % ", ".join(CURVES))
    if spec.valid_days is not None and spec.valid_days < 1:
        raise DicomTlsError("valid_days must be at least 1")
    if spec.pkcs12_path and not spec.privatekey_path:
        raise DicomTlsError("pkcs12_path needs the private key on this host (privatekey_path)")
    if spec.pkcs12_encryption not in crypto.PKCS12_ENCRYPTIONS:
        raise DicomTlsError("pkcs12_encryption must be modern or legacy")


def _load_issuer(spec: CertSpec, plan: Plan) -> None:
    if not spec.issuer_cert_path:
        return
    if not spec.issuer_privatekey_path and plan.mode != "install":
        raise DicomTlsError("issuer_privatekey_path is required with issuer_cert_path")
    if plan.check_mode and not os.path.lexists(spec.issuer_cert_path):
        plan.pending = "the issuer certificate %s does not exist yet" % spec.issuer_cert_path
        return
    plan.issuer_cert = crypto.load_certificate(
        read_bytes(spec.issuer_cert_path, "issuer certificate"), spec.issuer_cert_path
    )
    unfit = crypto.issuer_problem(plan.issuer_cert)  # not a CA: refused in every mode; keyUsage: when signing
    if unfit and (plan.mode in ("issue", "sign_csr") or not crypto.is_ca(plan.issuer_cert)):
        raise DicomTlsError(
            "the issuer '%s' %s" % (crypto.name_text(plan.issuer_cert.subject), unfit), spec.issuer_cert_path
        )
    problem = crypto.validity_problem(plan.issuer_cert, plan.now)
    if problem and plan.mode in ("issue", "sign_csr"):
        raise DicomTlsError(
            "the issuer '%s' %s (valid %s to %s): it cannot issue certificates now; renew the issuing CA first"
            % (
                crypto.name_text(plan.issuer_cert.subject),
                problem,
                crypto.isoformat(crypto.not_valid_before(plan.issuer_cert)),
                crypto.isoformat(crypto.not_valid_after(plan.issuer_cert)),
            ),
            spec.issuer_cert_path,
        )
    path = spec.issuer_privatekey_path
    if plan.mode == "install":  # only checks that the certificate comes from this CA
        return
    plan.issuer_key = crypto.load_private_key(
        read_bytes(path, "issuer private key"), path, spec.issuer_privatekey_passphrase, check_consistency=False
    )
    if crypto.public_key_der(plan.issuer_key) != crypto.public_key_der(plan.issuer_cert):
        raise DicomTlsError("issuer private key does not match the issuer certificate %s" % spec.issuer_cert_path, path)
    if spec.issuer_chain_path:
        chain = crypto.load_certificates(read_bytes(spec.issuer_chain_path, "issuer chain"), spec.issuer_chain_path)
        plan.issuer_chain = [c for c in chain if not crypto.is_self_signed(c) and c != plan.issuer_cert]
        plan.issuer_roots = [c for c in chain if crypto.is_self_signed(c)]  # judged (_warn_policy), not copied


def _signing_key(path: str, passphrase: str | None):
    """A key about to sign, loaded again with OpenSSL's consistency check (plan() skipped it)."""
    return crypto.load_private_key(read_bytes(path, "private key"), path, passphrase)


def _read_cert(p: Plan, unreadable_action: str) -> x509.Certificate | None:
    """The certificate at path (also p.cert); when there is none, or none readable, the action that
    writes one is planned (``unreadable_action`` for an unreadable one)."""
    path = p.spec.path
    data = read_optional(path)
    try:
        p.cert = crypto.load_certificate(data, path) if data is not None else None
    except DicomTlsError:
        p.actions.append(Action("certificate", path, unreadable_action, "the existing certificate is unreadable"))
        return None
    if p.cert is None:
        p.actions.append(Action("certificate", path, "created", "no certificate yet"))
    return p.cert


# ---------------------------------------------------------------- planning


def plan(spec: CertSpec, check_mode: bool = False) -> Plan:
    """Read disk, validate inputs, and decide what must change. Writes nothing.

    In check mode an input that an earlier task of the same run would create (the issuer
    certificate, the private key of certificate_content) may be missing: the plan then says what
    would be created instead of failing, and ``pending`` says which input it waits for."""
    _validate(spec)
    p = Plan(spec=spec, mode=_mode(spec), check_mode=check_mode)
    if p.mode == "absent":
        for target, path in (
            ("certificate", spec.path),
            ("chain", spec.chain_path),
            ("pkcs12", spec.pkcs12_path),
            ("csr", spec.csr_path),
            ("privatekey", spec.privatekey_path),
        ):
            if path and os.path.lexists(path):
                # every file checked before the first is removed: a refusal leaves all of them in place
                check_writable_dir(path)
                p.actions.append(Action(target, path, "removed", "state=absent"))
        return p

    _load_issuer(spec, p)
    if p.mode == "sign_csr":
        if spec.csr_content:
            p.csr = crypto.load_csr(spec.csr_content.encode("utf-8"), "csr_content")
        else:
            p.csr = crypto.load_csr(read_bytes(spec.csr_path, "CSR"), spec.csr_path)
    p.subject = crypto.parse_subject(spec.subject) if spec.subject else (p.csr.subject if p.csr else None)
    if p.subject is None and p.mode not in ("install",):
        raise DicomTlsError("subject is required")
    if spec.subject_alt_names is not None:
        p.sans = crypto.parse_sans(spec.subject_alt_names)
    elif p.csr is not None:
        p.sans = list(crypto.extension(p.csr, x509.SubjectAlternativeName) or [])
    else:
        p.sans = []

    csr_path = spec.csr_path if p.mode == "csr" else None
    for path in (spec.path, spec.chain_path, csr_path, spec.pkcs12_path, spec.database, spec.privatekey_path):
        if path:
            check_writable_dir(path)

    if p.mode in ("csr", "issue", "self_signed", "install"):
        _plan_key(p)
    if p.mode == "csr":
        _plan_csr(p)
        return p
    if p.mode == "install":
        _plan_install(p)
    else:
        _plan_certificate(p)
        if p.has("certificate"):
            _warn_if_capped(p)
    _plan_chain(p)
    _plan_pkcs12(p)
    _plan_database(p)
    _warn_policy(p)
    return p


def _warn_policy(p: Plan) -> None:
    """A warning for each certificate this task stores or signs with that OpenSSL 3 at security level 2
    refuses (dcmtk, at level 0, accepts it): the one at path when kept, certificate_content, the issuer
    and issuer_chain_path. A certificate the module issues uses SHA-256 or stronger and a key it allows."""
    spec = p.spec
    found = [(spec.issuer_cert_path, p.issuer_cert)]
    found += [(spec.issuer_chain_path, c) for c in p.issuer_chain + p.issuer_roots]
    if p.install:
        found += [("certificate_content", c) for c in p.install]
    elif p.cert is not None and not p.has("certificate"):
        found.append((spec.path, p.cert))
    seen = set()
    for source, cert in found:
        if cert is None or crypto.fingerprint(cert) in seen:
            continue
        seen.add(crypto.fingerprint(cert))
        warning = crypto.policy_warning(cert, source)
        if warning:
            p.warnings.append(warning)


def _ledger():
    """The CA ledger module (ledger.py, with crl.py under it), imported when a task names a database:
    a node's key, CSR or install never needs it, and every dicom_cert run would pay for its import."""
    from ansible_collections.medimg.dicom_tls.plugins.module_utils import ledger

    return ledger


def _plan_database(p: Plan) -> None:
    """A certificate this CA signs is recorded in the ledger; one already on disk but missing
    from it (issued before the ledger existed) is recorded without being reissued."""
    spec = p.spec
    if not spec.database:
        return
    if p.mode not in ("issue", "sign_csr"):
        raise DicomTlsError("database records certificates signed by an issuer: give issuer_cert_path")
    if not os.path.isdir(os.path.dirname(os.path.abspath(spec.database))):
        if p.check_mode and p.has("certificate"):
            return  # its folder is made by an earlier task of the run (the CA's folders)
        raise DicomTlsError("database: its directory does not exist", spec.database)
    entries = _ledger().check(spec.database)
    if not p.has("certificate") and p.cert is not None:
        p.actions += unrecorded(spec.database, entries, p.cert)


def unrecorded(database: str, entries: list, cert: x509.Certificate) -> list:
    """The action that records ``cert`` in the ledger ``database`` (its ``entries``), when it is not there."""
    if _ledger().status_of(entries, cert.serial_number) is not None:
        return []
    reason = "serial %s is not recorded in the database" % crypto.serial_hex(cert.serial_number)
    return [Action("database", database, "updated", reason)]


def _plan_key(p: Plan) -> None:
    spec = p.spec
    data, path = read_optional(spec.privatekey_path), spec.privatekey_path
    p.key = None if data is None else crypto.load_private_key(data, path, spec.privatekey_passphrase, False)
    if p.key is None:
        if p.mode == "install" and p.check_mode:
            p.pending = "the private key %s does not exist yet" % spec.privatekey_path
            return
        if p.mode == "install":
            raise DicomTlsError(
                "private key does not exist: certificate_content needs the key it was issued for", spec.privatekey_path
            )
        p.actions.append(Action("privatekey", spec.privatekey_path, "created", "no private key yet"))
        return
    _plan_key_mode(p)
    if p.mode == "install":
        return
    have, want = _have_params(p.key), _key_params(spec)
    reason = None
    if have != want:
        reason = "key type changed from %s to %s" % (have, want)
    elif spec.force and spec.regenerate_key:
        reason = "force with regenerate_key"
    if reason:
        p.actions.append(Action("privatekey", spec.privatekey_path, "regenerated", reason))
        p.key = None


def _plan_key_mode(p: Plan) -> None:
    """An existing private key that other users may read (0644, 0640, ...) is tightened to 0600, with a
    warning: it may have been read already, so rotating it deserves a thought."""
    path = p.spec.privatekey_path
    mode = files.file_mode(path)
    if mode is not None and mode & 0o077:
        reason = "mode %04o lets other users read the private key: tightened to 0600" % mode
        step = Action("privatekey_mode", path, "attributes_changed", reason)
        step.before, step.after = {"mode": "%04o" % mode}, {"mode": "0600"}
        p.actions.append(step)
        p.warnings.append("%s: %s; others may have read it, consider regenerate_key" % (path, reason))


def _plan_csr(p: Plan) -> None:
    spec = p.spec
    data = read_optional(spec.csr_path)
    reasons = []
    if data is None:
        p.actions.append(Action("csr", spec.csr_path, "created", "no CSR yet"))
        return
    try:
        csr = crypto.load_csr(data, spec.csr_path)
    except DicomTlsError as exc:
        csr, reasons = None, [exc.reason]
    if csr is not None:
        if p.key is None:
            reasons.append("the private key is regenerated")
        elif crypto.public_key_der(csr) != crypto.public_key_der(p.key):
            reasons.append("the CSR does not match the private key")
        reasons += identity_changes(csr, p.subject, p.sans)
    if spec.force:
        reasons.append("force")
    if reasons:
        p.actions.append(Action("csr", spec.csr_path, "regenerated", "; ".join(reasons)))


def _plan_certificate(p: Plan) -> None:
    spec = p.spec
    cert = _read_cert(p, "renewed")
    if cert is None:
        return
    reasons = []
    if p.pending:
        reasons.append(p.pending + " (check mode: an earlier task would create it)")
    if spec.force:
        reasons.append("force")
    if p.mode == "sign_csr":
        if crypto.public_key_der(cert) != crypto.public_key_der(p.csr):
            reasons.append("the certificate does not match the CSR's key (the node has a new key)")
    elif p.key is None:
        reasons.append("the private key is regenerated")
    elif crypto.public_key_der(cert) != crypto.public_key_der(p.key):
        reasons.append("the certificate does not match the private key")
    if p.pending:  # the issuer is not there yet: nothing to judge the signature by
        pass
    elif p.issuer_cert is not None and not crypto.issued_by(cert, p.issuer_cert):
        reasons.append("it is not signed by the issuer %s (CA replaced)" % crypto.name_text(p.issuer_cert.subject))
    elif p.issuer_cert is None and not crypto.is_self_signed(cert):
        reasons.append("it is not self-signed")
    reasons += identity_changes(cert, p.subject, p.sans, spec.usage)
    due = expiry_due(spec, cert, p.now)
    if due and (reasons or p.issuer_cert is None or _new_not_after(p) > crypto.not_valid_after(cert)):
        reasons.append("it " + due)
    elif due:
        p.warnings.append(
            "%s %s but is not renewed: the issuer %s ends on %s, so a new certificate would not outlive the current "
            "one; renew the issuing CA first" % (spec.path, due, _issuer_named(p), _issuer_end(p))
        )
    if reasons:
        if spec.regenerate_key and p.key is not None and not p.has("privatekey"):
            p.actions.append(Action("privatekey", spec.privatekey_path, "regenerated", "renewal with regenerate_key"))
            p.key = None
        p.actions.append(Action("certificate", spec.path, "renewed", "; ".join(reasons)))
    elif _encoding_of(spec.path) != spec.format:
        p.actions.append(Action("certificate", spec.path, "updated", "written as %s" % spec.format.upper()))


def _new_not_after(p: Plan) -> datetime.datetime:
    """notAfter of a certificate issued now: valid_days, capped by the issuer's notAfter."""
    not_after = p.now + datetime.timedelta(days=p.spec.valid_days or DEFAULT_VALID_DAYS[p.spec.usage])
    if p.issuer_cert is not None:
        not_after = min(not_after, crypto.not_valid_after(p.issuer_cert))
    return not_after


def _issuer_named(p: Plan) -> str:
    return "'%s' (%s)" % (crypto.name_text(p.issuer_cert.subject), p.spec.issuer_cert_path)


def _issuer_end(p: Plan) -> str:
    return crypto.isoformat(crypto.not_valid_after(p.issuer_cert))


def _warn_if_capped(p: Plan) -> None:
    days = p.spec.valid_days or DEFAULT_VALID_DAYS[p.spec.usage]
    if p.issuer_cert is not None and p.now + datetime.timedelta(days=days) > crypto.not_valid_after(p.issuer_cert):
        p.warnings.append(
            "%s: valid_days %d is capped by the issuer %s, which ends on %s: the certificate ends then"
            % (p.spec.path, days, _issuer_named(p), _issuer_end(p))
        )


def _renew_before_days(spec: CertSpec, cert: x509.Certificate | None) -> int:
    if spec.renew_before_days is not None:
        return spec.renew_before_days
    days = spec.valid_days or DEFAULT_VALID_DAYS[spec.usage]
    if cert is not None:
        days = (crypto.not_valid_after(cert) - crypto.not_valid_before(cert)).days or days
    return max(days // 3, 0)


def _encoding_of(path: str) -> str:
    data = read_optional(path) or b""
    return "pem" if data.lstrip().startswith(b"-----BEGIN") else "der"


def _plan_install(p: Plan) -> None:
    spec = p.spec
    p.install = crypto.load_certificates(spec.certificate_content.encode("utf-8"), "certificate_content")
    leaf = p.install[0]
    if spec.usage not in ("root_ca", "intermediate_ca") and crypto.is_ca(leaf):
        raise DicomTlsError(
            "certificate_content (%s) is a CA certificate (basicConstraints CA:TRUE), not a %s certificate: "
            "give the certificate issued to this node" % (crypto.name_text(leaf.subject), spec.usage),
            spec.path,
        )
    mismatch = p.key is not None and crypto.public_key_der(leaf) != crypto.public_key_der(p.key)
    if mismatch and p.check_mode:
        # the CSR task before this one would replace the key (key type or size changed): predicted
        p.warnings.append(
            "check mode: certificate_content does not match the current private key %s; the real run fails"
            " unless an earlier task replaces that key" % spec.privatekey_path
        )
    elif mismatch:
        raise DicomTlsError(
            "certificate_content (%s) does not match the private key" % crypto.name_text(leaf.subject),
            spec.privatekey_path,
        )
    if p.issuer_cert is not None and not crypto.issued_by(leaf, p.issuer_cert):
        raise DicomTlsError(
            "certificate_content (%s) is not issued by the given CA" % crypto.name_text(leaf.subject),
            spec.issuer_cert_path,
        )
    cert = _read_cert(p, "updated")
    if cert is not None and cert != leaf:
        p.actions.append(
            Action("certificate", spec.path, "renewed", "a new certificate was issued (serial %x)" % leaf.serial_number)
        )
    elif cert is not None and _encoding_of(spec.path) != spec.format:
        p.actions.append(Action("certificate", spec.path, "updated", "written as %s" % spec.format.upper()))


def _plan_chain(p: Plan) -> None:
    spec = p.spec
    if not spec.chain_path:
        return
    if p.has("certificate") and p.mode != "install":
        p.actions.append(Action("chain", spec.chain_path, "updated", "the certificate changed"))
        return
    if read_optional(spec.chain_path) != chain_bytes(p, current_certificate(p)):
        p.actions.append(Action("chain", spec.chain_path, "updated", "chain content differs"))


def chain_certs(p: Plan, leaf: x509.Certificate) -> list:
    """Leaf first, then the intermediates (never a root): the 'fullchain' dcmtk and Orthanc read."""
    if p.install:
        return [leaf] + [c for c in p.install[1:] if not crypto.is_self_signed(c)]
    certs = [leaf]
    if p.issuer_cert is not None and not crypto.is_self_signed(p.issuer_cert):
        certs.append(p.issuer_cert)
    return certs + p.issuer_chain


def chain_bytes(p: Plan, leaf: x509.Certificate) -> bytes:
    return b"".join(crypto.cert_pem(c) for c in chain_certs(p, leaf))


def _plan_pkcs12(p: Plan) -> None:
    """The PKCS#12 holds key, certificate and chain: rebuilt when any of them or its encryption changes."""
    spec = p.spec
    if not spec.pkcs12_path:
        return
    data = read_optional(spec.pkcs12_path)
    if data is None:
        p.actions.append(Action("pkcs12", spec.pkcs12_path, "created", "no PKCS#12 key store yet"))
        return
    if p.has("certificate") or p.has("privatekey"):
        p.actions.append(Action("pkcs12", spec.pkcs12_path, "updated", "the certificate or key changed"))
        return
    store = crypto.load_pkcs12(data, spec.pkcs12_passphrase)
    want = chain_certs(p, current_certificate(p))
    if store is None or store[0] is None:
        why = "it cannot be opened with pkcs12_passphrase or holds no key"
    elif store[1] != want[0] or crypto.public_key_der(store[0]) != crypto.public_key_der(p.key):
        why = "it holds another certificate or key"
    elif store[2] != want[1:]:
        why = "its CA certificates differ from the chain (%d held, %d in the chain)" % (len(store[2]), len(want) - 1)
    elif spec.pkcs12_passphrase and crypto.pkcs12_encryption(data) != spec.pkcs12_encryption:
        why = "pkcs12_encryption changed to %s" % spec.pkcs12_encryption
    else:
        return
    p.actions.append(Action("pkcs12", spec.pkcs12_path, "updated", why))


# ---------------------------------------------------------------- applying


def _sign_certificate(p: Plan, public_key, signer_key, serial: int | None = None) -> x509.Certificate:
    spec = p.spec
    not_before = p.now - BACKDATE
    not_after = _new_not_after(p)
    if p.issuer_cert is not None:
        issuer_name = p.issuer_cert.subject
        aki = crypto.authority_key_identifier(p.issuer_cert)
    else:
        issuer_name = p.subject
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(p.subject)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in usage_extensions(spec.usage, public_key):
        builder = builder.add_extension(ext, critical=critical)
    if p.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(p.sans), critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    builder = builder.add_extension(aki, critical=False)
    return builder.sign(signer_key, _hash_for(signer_key))


def _build_csr(p: Plan, key) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(p.subject)
    if p.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(p.sans), critical=False)
    return builder.sign(key, _hash_for(key))


def apply(p: Plan) -> dict:
    """Carry out the plan. Returns {'backup_files': [...], 'certificate': cert or None, 'csr': csr or None}."""
    spec = p.spec
    backups: list[str] = []

    def backup(path):
        if spec.backup and os.path.exists(path):
            backups.append(backup_copy(path))

    if p.mode == "absent":
        for a in p.actions:
            if a.action != "recovered":
                backup(a.path)
                files.remove(a.path)
        if p.has("privatekey"):  # the key's generation store holds the key's bytes (files.write_generation)
            files.remove_store(spec.privatekey_path)
        return {"backup_files": backups, "certificate": None, "csr": None}

    for a in p.actions:
        make_parent_dirs(a.path, 0o700 if a.role == "privatekey" else 0o755)
    if p.has("privatekey_mode"):
        files.set_mode(spec.privatekey_path, 0o600)
    # Every new file is computed first, then all move together (files.write_group): a new key moves
    # with its certificate through one rename (a generation store), so a crash at any point leaves the
    # old pair or the new pair; files written with the same key use the journal (any mix still matches
    # the key, and the next run completes the set).
    writes: list[tuple[str, bytes, int]] = []
    if p.has("privatekey"):
        backup(spec.privatekey_path)
        p.key = generate_key(spec)
        writes.append((spec.privatekey_path, key_pem(p.key, spec.privatekey_passphrase), 0o600))
    elif p.key is not None and (p.has("csr") or p.has("pkcs12") or (p.has("certificate") and p.mode == "self_signed")):
        p.key = _signing_key(spec.privatekey_path, spec.privatekey_passphrase)
    if p.issuer_key is not None and p.has("certificate") and p.mode in ("issue", "sign_csr"):
        p.issuer_key = _signing_key(spec.issuer_privatekey_path, spec.issuer_privatekey_passphrase)

    if p.mode == "csr":
        csr = None
        if p.has("csr"):
            csr = _build_csr(p, p.key)
            writes.append((spec.csr_path, crypto.csr_pem(csr), 0o644))
        files.write_group(anchor(spec), writes)
        return {"backup_files": backups, "certificate": None, "csr": csr}

    def write_all(cert):
        if p.has("certificate"):
            writes.append((spec.path, crypto.der(cert) if spec.format == "der" else crypto.pem(cert), 0o644))
        if p.has("chain"):
            backup(spec.chain_path)
            writes.append((spec.chain_path, chain_bytes(p, cert), 0o644))
        if p.has("pkcs12"):
            backup(spec.pkcs12_path)
            certs = chain_certs(p, cert)
            data = crypto.pkcs12_bytes(p.key, cert, certs[1:], spec.pkcs12_passphrase, spec.pkcs12_encryption)
            writes.append((spec.pkcs12_path, data, 0o600))
        files.write_group(anchor(spec), writes)

    cert = current_certificate(p)
    if p.has("certificate"):
        backup(spec.path)
        if p.mode == "install":  # an installed certificate is given, not signed (and has no database)
            write_all(cert)
        else:
            public_key = p.csr.public_key() if p.mode == "sign_csr" else p.key.public_key()
            signer = p.key if p.mode == "self_signed" else p.issuer_key
            sign = functools.partial(_sign_certificate, p, public_key, signer)
            if spec.database:  # serial chosen, entry recorded and files written under the ledger's lock
                cert = _ledger().issue(spec.database, sign, write_all)
            else:
                cert = sign(None)
                write_all(cert)
    else:
        if p.has("database"):
            with _ledger().update(spec.database) as book:
                book.record(cert)
        write_all(cert)
    p.cert = cert
    return {"backup_files": backups, "certificate": cert, "csr": None}


def predict(p: Plan) -> dict:
    """Check mode's outcome: what apply() would return, built in memory and never written.

    A CSR that would be (re)made is built (with the node's key when it is kept, else with a
    throw-away key of the same type that is never stored or returned) so that the CA's signing task
    can predict from it; a certificate a CSR would get is signed in memory when the issuer exists
    (random serial, no ledger entry). Returns apply()'s shape, ``backup_files`` empty."""
    spec = p.spec
    out = {"backup_files": [], "certificate": current_certificate(p), "csr": None}
    if p.mode == "csr":
        if p.has("csr"):
            out["csr"] = _build_csr(p, p.key if p.key is not None else generate_key(spec))
        return out
    if p.has("certificate"):
        out["certificate"] = None
        if p.mode == "sign_csr" and p.issuer_key is not None and not p.pending:
            out["certificate"] = _sign_certificate(p, p.csr.public_key(), p.issuer_key)
    return out


def anchor(spec: CertSpec) -> str | None:
    """The file whose lock guards all of the spec's files and whose journal finishes their update."""
    return spec.privatekey_path or spec.path or spec.csr_path


def locked(spec: CertSpec, enabled: bool = True):
    """files.locked_group for the spec's files: yields the files recovered (see ``add_recovered``)."""
    paths = [spec.privatekey_path, spec.path, spec.chain_path, spec.pkcs12_path, spec.csr_path]
    return files.locked_group(anchor(spec), paths, enabled)


def recovered_actions(recovered: list[str]) -> list[reports.Action]:
    """Files an interrupted run left half moved, completed by this run (check mode: the real run): actions."""
    reason = "an interrupted run left it half updated: its update was completed from the journal"
    return [Action("recovery", path, "recovered", reason) for path in recovered]


def add_recovered(p: Plan, recovered: list[str]) -> None:
    p.actions[:0] = recovered_actions(recovered[::-1])


def current_certificate(p: Plan) -> x509.Certificate | None:
    """The certificate the plan leaves in place (for results in check mode and no-change runs)."""
    return p.install[0] if p.install else p.cert


# ---------------------------------------------------------------- one CA, many CSRs


def sign_many(issuer: dict, requests: list[dict], check_mode: bool = False) -> dict[str, dict]:
    """Sign (when due) the CSR of every request with one issuing CA: the CA side of a fleet run in one
    pass. ``issuer`` holds the CertSpec fields every request shares (issuer_*, usage, valid_days,
    renew_before, backup); each request has ``name``, ``path``, ``csr_content`` and optionally
    ``chain_path``, ``subject`` and ``subject_alt_names`` (the CSR's by default).

    Returns, per name: changed, actions, backup_files (the copies made before overwriting) and (when
    a certificate exists after the run) serial, not_after, certificate and chain (PEM, what the node
    installs next to its key); a request that cannot be signed gets failed=True and msg, the others go on."""
    out: dict[str, dict] = {}
    for req in requests:
        name = req["name"]
        fields = dict(issuer)
        fields.update({k: req.get(k) for k in ("path", "chain_path", "csr_content", "subject", "subject_alt_names")})
        try:
            spec = CertSpec(state="present", **fields)
            with locked(spec, not check_mode) as recovered:
                p = plan(spec, check_mode)
                add_recovered(p, recovered)
                done = predict(p) if check_mode else apply(p)
        except DicomTlsError as exc:
            out[name] = {"changed": False, "failed": True, "msg": str(exc), "path": exc.path}
            continue
        cert = done["certificate"]
        entry = {
            "changed": bool(p.actions),
            "actions": [a.as_dict() for a in p.actions],
            "backup_files": done["backup_files"],
        }
        if check_mode and p.has("certificate"):
            # what the node would install, signed in memory (None while the CA itself is pending)
            entry["predicted"] = True
        if cert is not None:
            info = crypto.describe_certificate(cert)
            entry.update(serial=info["serial"], not_after=info["not_after"])
            entry["certificate"] = crypto.cert_pem(cert).decode("ascii")
            entry["chain"] = chain_bytes(p, cert).decode("ascii")
        out[name] = entry
    return out


def check_issuer(issuer: dict, check_mode: bool = False) -> None:
    """Load the CA of ``issuer`` (certificate, key, passphrase, chain) once: a problem there is the
    task's, not one request's. In check mode a CA that does not exist yet is not a problem (an
    earlier task of the run would create it)."""
    spec = CertSpec(state="present", path="-", csr_content="-", **issuer)
    _load_issuer(spec, Plan(spec=spec, mode="sign_csr", check_mode=check_mode))


def installed_digests(spec: CertSpec) -> dict:
    """With state=csr: the SHA-256 (hex) of the bytes of ``path`` and ``chain_path`` when given
    (None for a file that does not exist), so that a play installs only a certificate or chain
    the node does not hold yet. Reads only."""
    out = {}
    for key in ("path", "chain_path"):
        path = getattr(spec, key)
        if path:
            data = read_optional(path)
            out[key + "_sha256"] = hashlib.sha256(data).hexdigest() if data is not None else None
    return out
