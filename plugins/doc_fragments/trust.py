# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The trust inputs of the modules that verify a peer or a signer (dicom_tls_echo, dicom_sign), named
as dcmtk's +cf and +cd options and OpenSSL's -CAfile / -CApath.

Its argument spec lives once in plugins/module_utils/shared_options.py (trust());
tests/unit/plugins/doc_fragments/test_ca_fragments.py checks that both say the same."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ca_file:
    description:
      - PEM file of trusted CA certificates, as dcmtk's C(+cf) and OpenSSL's C(-CAfile). It may also hold CRLs.
      - >-
        Certificates are read under the PEM labels OpenSSL reads them by, C(CERTIFICATE) and C(X509 CERTIFICATE).
        A C(TRUSTED CERTIFICATE) block (C(openssl x509 -trustout)) is refused, in O(ca_path) too (left out with a
        warning), because its trust settings change, per purpose, what OpenSSL trusts it for.
    type: path
  ca_path:
    description:
      - OpenSSL hashed directory of trusted CA certificates and CRLs (C(HHHHHHHH.N), C(HHHHHHHH.rN)), as
        dcmtk's C(+cd) and OpenSSL's C(-CApath); M(medimg.dicom_tls.dicom_truststore) builds one.
      - Read as OpenSSL reads it (PEM, numbered from 0 with no gap); a certificate it holds under no such name,
        or one OpenSSL loads but verifies nothing with, is left out with a warning naming the file.
    type: path
  crl_files:
    description: CRL files (PEM or DER), checked against the issuers in O(ca_file) or O(ca_path).
    type: list
    elements: path
"""
