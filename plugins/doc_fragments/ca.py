# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that sign with a CA (dicom_cert, dicom_csr_sign, dicom_pkcs12, dicom_crl).

Their argument specs live once in plugins/module_utils/ca_options.py; tests/unit/plugins/test_doc_fragments.py
checks that both say the same (type, default, choices, no_log of passphrases)."""

from __future__ import annotations


class ModuleDocFragment:
    # The issuing CA: its certificate, its key and its ledger.
    DOCUMENTATION = r"""
options:
  issuer_cert_path:
    description: The CA certificate that signs (PEM or DER).
    type: path
  issuer_privatekey_path:
    description: The CA's private key (PEM or DER). It never leaves the CA host.
    type: path
  issuer_privatekey_passphrase:
    description: Passphrase of O(issuer_privatekey_path).
    type: str
  database:
    description:
      - The CA's ledger, OpenSSL's C(ca) database (C(index.txt), with C(index.txt.attr) beside it), as
        the C(database) setting of C(openssl.cnf) names it. Every certificate signed here is recorded as a
        C(V) line (expiry, serial, subject) under an exclusive lock, written atomically before the
        certificate; if writing the certificate fails the ledger is put back as it was.
      - A certificate already on disk but missing from the ledger is recorded without being reissued.
      - C(openssl ca -status SERIAL) and C(openssl ca -updatedb) work on it; see
        M(medimg.dicom_tls.dicom_ledger_info) for reports.
    type: path
"""

    # What a certificate signed by the CA is for and how long it lives.
    ISSUANCE = r"""
options:
  usage:
    description: V(node) serverAuth and clientAuth (a DICOM node is SCU and SCP); V(server); V(client).
    type: str
    choices: [node, server, client]
    default: node
  issuer_chain_path:
    description: The issuer's own intermediates, appended to the chain of each certificate (roots are left out).
    type: path
  valid_days:
    description:
      - Lifetime of a new certificate in days (365 when not given), never later than the issuer's notAfter.
      - A change alone does not renew.
    type: int
  renew_before_days:
    description: Renew when fewer days than this are left. Defaults to a third of the certificate's lifetime.
    type: int
"""

    # A private key generated on the host that uses it.
    PRIVATE_KEY = r"""
options:
  key_type:
    description: Type of a generated key.
    type: str
    choices: [rsa, ecdsa]
    default: rsa
  key_size:
    description: RSA key size in bits (at least 2048).
    type: int
    default: 3072
  curve:
    description: ECDSA curve.
    type: str
    choices: [secp256r1, secp384r1, secp521r1]
    default: secp256r1
"""
