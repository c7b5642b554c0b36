# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The argument specs of the options that several modules share (outside the CA groups of
ca_options.py), once.

Each group is documented by the doc fragment of the same name - ``medimg.dicom_tls.privatekey``,
``medimg.dicom_tls.trust`` and ``medimg.dicom_tls.backup`` (plugins/doc_fragments/); a unit test
holds the two to the same types, defaults and choices."""

from __future__ import annotations


def privatekey() -> dict:
    """A private key on the managed host and its passphrase (``medimg.dicom_tls.privatekey``)."""
    return dict(
        privatekey_path=dict(type="path"),
        privatekey_passphrase=dict(type="str", no_log=True),
    )


def trust() -> dict:
    """The TLS and signature trust inputs, as dcmtk's +cf, +cd and CRL options name them
    (``medimg.dicom_tls.trust``)."""
    return dict(
        ca_file=dict(type="path"),
        ca_path=dict(type="path"),
        crl_files=dict(type="list", elements="path"),
    )


def backup() -> dict:
    """A timestamped copy of each file before it is overwritten or removed (``medimg.dicom_tls.backup``)."""
    return dict(backup=dict(type="bool", default=False))
