# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Signer keys and certificates, MAC algorithms, and the certificate chain check used when
verifying DICOM signatures (trusted anchors, untrusted intermediates, optional CRLs)."""

from __future__ import annotations

import hashlib

from ansible_collections.medimg.dicom_tls.plugins.module_utils import crypto, namehash
from ansible_collections.medimg.dicom_tls.plugins.module_utils.errors import DicomTlsError
from ansible_collections.medimg.dicom_tls.plugins.module_utils.files import read_bytes

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils

    class _RIPEMD160(hashes.HashAlgorithm):
        """RIPEMD-160 for prehashed signing (cryptography has no class of its own for it)."""

        name = "ripemd160"
        digest_size = 20
        block_size = 64

    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False


class MacAlgorithm:
    __slots__ = ("name", "dicom", "digest_info", "can_sign")

    def __init__(self, name, dicom, digest_info, can_sign):
        self.name = name
        self.dicom = dicom
        self.digest_info = bytes.fromhex(digest_info)
        self.can_sign = can_sign

    def new(self):
        return hashlib.new(self.name)

    def hash_class(self):
        if self.name == "ripemd160":
            return _RIPEMD160()
        return getattr(hashes, self.name.upper())()


MAC_ALGORITHMS = {
    a.name: a
    for a in (
        MacAlgorithm("sha256", "SHA256", "3031300d060960864801650304020105000420", True),
        MacAlgorithm("sha384", "SHA384", "3041300d060960864801650304020205000430", True),
        MacAlgorithm("sha512", "SHA512", "3051300d060960864801650304020305000440", True),
        MacAlgorithm("ripemd160", "RIPEMD160", "3021300906052b2403020105000414", True),
        MacAlgorithm("sha1", "SHA1", "3021300906052b0e03021a05000414", False),
        MacAlgorithm("md5", "MD5", "3020300c06082a864886f70d020505000410", False),
    )
}
BY_DICOM_NAME = {a.dicom: a for a in MAC_ALGORITHMS.values()}


def der_length(data: bytes) -> int:
    """Total length of the DER TLV at the start of ``data`` (to cut off DICOM pad bytes); ValueError
    when it is not one."""
    return namehash.read_tlv(data)[2]


def key_kind(public_key) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    if isinstance(public_key, dsa.DSAPublicKey):
        return "DSA"
    return "unsupported"


class Signer:
    """A private key and its certificate, checked to belong together."""

    def __init__(self, privatekey_path: str, passphrase: str | None, certificate_path: str):
        self.key = crypto.load_private_key(read_bytes(privatekey_path, "private key"), privatekey_path, passphrase)
        self.cert = crypto.load_certificate(read_bytes(certificate_path, "certificate"), certificate_path)
        self.kind = key_kind(self.key.public_key())
        if self.kind not in ("RSA", "ECDSA"):
            raise DicomTlsError("only RSA and ECDSA keys can sign", privatekey_path)
        if crypto.public_key_der(self.key) != crypto.public_key_der(self.cert):
            raise DicomTlsError("private key %s does not match the certificate" % privatekey_path, certificate_path)
        problem = crypto.validity_problem(self.cert)
        if problem:  # a signature made now would name a signer no verifier accepts at its datetime
            subject = crypto.subject_text(self.cert)
            raise DicomTlsError(
                "the signer certificate '%s' %s: sign with a certificate that is valid now" % (subject, problem),
                certificate_path,
            )
        self.cert_der = crypto.der(self.cert)
        self.subject = crypto.subject_text(self.cert)
        self.certificate_path = certificate_path

    def sign(self, alg: MacAlgorithm, digest: bytes) -> bytes:
        prehashed = utils.Prehashed(alg.hash_class())
        if self.kind == "RSA":
            return self.key.sign(digest, padding.PKCS1v15(), prehashed)
        return self.key.sign(digest, ec.ECDSA(prehashed))


def signature_matches(cert, alg: MacAlgorithm, digest: bytes, signature: bytes) -> bool:
    """Does ``signature`` (as stored, possibly padded) sign ``digest`` with the cert's key?"""
    public = cert.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            recovered = public.recover_data_from_signature(signature, padding.PKCS1v15(), None)
            return recovered == alg.digest_info + digest
        der = signature[: der_length(signature)]
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(der, digest, ec.ECDSA(utils.Prehashed(alg.hash_class())))
        elif isinstance(public, dsa.DSAPublicKey):
            public.verify(der, digest, utils.Prehashed(alg.hash_class()))
        else:
            return False
        return True
    except (InvalidSignature, ValueError):
        return False


class SignerChainVerifier:
    """Checks the certificate chain of a DICOM signer (not a TLS trust store: see truststore.py).

    Trusted anchors (``ca_file``, ``ca_path``), untrusted intermediates and CRLs; the chain
    check is done at the current time as dcmsign does, and cached per signer certificate."""

    def __init__(self, ca_file=None, ca_path=None, untrusted_certs=None, crl_files=None):
        self.trusted, self.crls, self.notes = crypto.read_trust(ca_file, ca_path, crl_files)
        self.untrusted = [
            cert
            for path in untrusted_certs or ()
            for cert in crypto.load_certificates(read_bytes(path, "untrusted certificate file"), path)
        ]
        self.trusted_der = {crypto.der(c) for c in self.trusted}
        self._cache = {}

    @property
    def empty(self) -> bool:
        return not self.trusted

    def _issuer_of(self, cert):
        return next((cand for cand in self.trusted + self.untrusted if crypto.issued_by(cert, cand)), None)

    def check(self, cert, der: bytes) -> str | None:
        """None when the chain of ``cert`` reaches a trusted self-signed anchor, else why not."""
        if der not in self._cache:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[der] = self._check(cert)
        return self._cache[der]

    def _check(self, leaf) -> str | None:
        if not self.trusted:
            return "no trusted certificates were given (ca_file or ca_path)"
        now = crypto.utcnow()
        chain = [leaf]
        cur = leaf
        for _depth in range(12):
            name = crypto.subject_text(cur)
            problem = crypto.validity_problem(cur, now)
            if problem:
                return "certificate '%s' %s" % (name, problem)
            if crypto.is_self_signed(cur):
                if crypto.der(cur) in self.trusted_der:
                    return self._crl_check(chain)
                return "untrusted: self-signed certificate '%s' is not among the trusted certificates" % name
            issuer = self._issuer_of(cur)
            if issuer is None:
                return "untrusted: no issuer certificate for '%s' in the trusted or untrusted certificates" % name
            if not crypto.is_ca(issuer):
                return "untrusted: issuer '%s' is not a CA certificate" % crypto.subject_text(issuer)
            chain.append(issuer)
            cur = issuer
        return "untrusted: certificate chain too long"

    def _crl_check(self, chain) -> str | None:
        if not self.crls:
            return None
        now = crypto.utcnow()
        for cert, issuer in zip(chain, chain[1:]):
            crl = next((cand for cand in self.crls if crypto.crl_issued_by(cand, issuer)), None)
            if crl is None:
                return "no CRL from '%s' among the CRLs given" % crypto.subject_text(issuer)
            expiry = crypto.next_update(crl)
            if expiry is not None and expiry < now:
                return "the CRL from '%s' expired on %s" % (crypto.subject_text(issuer), crypto.isoformat(expiry))
            if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
                return "certificate '%s' is revoked" % crypto.subject_text(cert)
        return None
