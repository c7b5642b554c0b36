# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A private key on the managed host (dicom_cert, dicom_cert_info, dicom_sign).

Its argument spec lives once in plugins/module_utils/shared_options.py (privatekey());
tests/unit/plugins/doc_fragments/test_ca_fragments.py checks that both say the same."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  privatekey_path:
    description:
      - A private key on this host (PEM or DER, RSA or ECDSA).
      - Its bytes never appear in a result, a diff or a log.
    type: path
  privatekey_passphrase:
    description: Passphrase of an encrypted O(privatekey_path).
    type: str
"""
