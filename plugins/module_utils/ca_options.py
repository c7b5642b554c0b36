# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument specs of the option groups that the CA modules share, once.

Each group is documented by the doc fragment of the same name in plugins/doc_fragments/ca.py
(``medimg.dicom_tls.ca``, ``medimg.dicom_tls.ca.issuance``, ``medimg.dicom_tls.ca.private_key``);
a unit test holds the two to the same types, defaults and choices."""

from __future__ import annotations

from ansible_collections.medimg.dicom_tls.plugins.module_utils import files
from ansible_collections.medimg.dicom_tls.plugins.module_utils.cert import CURVES
from ansible_collections.medimg.dicom_tls.plugins.module_utils.options import days_max

NODE_USAGES = ("node", "server", "client")
KEY_TYPES = ("rsa", "ecdsa")
# The files of the issuing CA that a module reads (options.guard keeps outputs off them).
ISSUER_INPUTS = ("issuer_cert_path", "issuer_privatekey_path", "issuer_chain_path")


def issuer(required: bool = True) -> dict:
    """The issuing CA (doc fragment ``medimg.dicom_tls.ca``)."""
    return dict(
        issuer_cert_path=dict(type="path", required=required),
        issuer_privatekey_path=dict(type="path", required=required),
        issuer_privatekey_passphrase=dict(type="str", no_log=True),
        database=dict(type="path"),
    )


def issuance(usages=NODE_USAGES) -> dict:
    """What a signed certificate is for and how long it lives (``medimg.dicom_tls.ca.issuance``)."""
    return dict(
        usage=dict(type="str", default="node", choices=list(usages)),
        issuer_chain_path=dict(type="path"),
        valid_days=dict(type="int"),
        renew_before_days=dict(type="int"),
    )


def private_key() -> dict:
    """A key generated where it is used (``medimg.dicom_tls.ca.private_key``)."""
    return dict(
        key_type=dict(type="str", default="rsa", choices=list(KEY_TYPES)),
        key_size=dict(type="int", default=3072),
        curve=dict(type="str", default="secp256r1", choices=list(CURVES)),
    )


def ranges() -> dict:
    """The ranges of the numeric options above, for options.guard (those a module has are checked)."""
    return {
        "key_size": (2048, 16384, " bits (OpenSSL's RSA limit)"),
        "valid_days": (1, days_max(), " days (X.509 dates end at 9999-12-31)"),
        "renew_before_days": (0, days_max(), " days"),
    }


def warn_loose_issuer_key(module) -> None:
    """The CA's key is only read by the CA modules: warn (files.loose_key_warning) when other users may
    read it, as dicom_sign and dicom_tls_echo do for the keys they read."""
    warning = files.loose_key_warning(module.params.get("issuer_privatekey_path"), "issuer_privatekey_path")
    if warning:
        module.warn(warning)
