# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backups of the files a module overwrites (dcmtk_option_files, dicom_cert, dicom_csr_sign,
dicom_truststore, orthanc_config).

Its argument spec lives once in plugins/module_utils/shared_options.py (backup());
tests/unit/plugins/doc_fragments/test_ca_fragments.py checks that both say the same."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  backup:
    description:
      - Keep a timestamped copy (C(FILE.YYYYmmddTHHMMSS.ffffff~), same mode) of each file before it is
        overwritten or removed.
    type: bool
    default: false
"""
