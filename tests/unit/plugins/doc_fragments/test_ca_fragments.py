"""The shared option groups say the same in their doc fragment (plugins/doc_fragments/ca.py) and their
argument spec (plugins/module_utils/ca_options.py), and every module that takes a group both extends
the fragment and builds its spec from ca_options (so a default lives once)."""

from __future__ import annotations

import ast
import os

import pytest
import yaml
from ansible_collections.medimg.dicom_tls.plugins.doc_fragments.ca import ModuleDocFragment
from ansible_collections.medimg.dicom_tls.plugins.module_utils import ca_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
GROUPS = {
    "medimg.dicom_tls.ca": (ModuleDocFragment.DOCUMENTATION, ca_options.issuer(required=False)),
    "medimg.dicom_tls.ca.issuance": (ModuleDocFragment.ISSUANCE, ca_options.issuance()),
    "medimg.dicom_tls.ca.private_key": (ModuleDocFragment.PRIVATE_KEY, ca_options.private_key()),
}
USERS = {
    "dicom_cert": ["medimg.dicom_tls.ca", "medimg.dicom_tls.ca.issuance", "medimg.dicom_tls.ca.private_key"],
    "dicom_pkcs12": ["medimg.dicom_tls.ca", "medimg.dicom_tls.ca.issuance", "medimg.dicom_tls.ca.private_key"],
    "dicom_csr_sign": ["medimg.dicom_tls.ca", "medimg.dicom_tls.ca.issuance"],
    "dicom_crl": ["medimg.dicom_tls.ca"],
}


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fragment_and_spec_agree(group):
    text, spec = GROUPS[group]
    docs = yaml.safe_load(text)["options"]
    assert sorted(docs) == sorted(spec)
    for name, doc in docs.items():
        arg = spec[name]
        assert doc["type"] == arg["type"], name
        assert doc.get("default") == arg.get("default"), name
        assert doc.get("choices") == arg.get("choices"), name
        assert arg.get("no_log", False) == name.endswith("passphrase"), name


@pytest.mark.parametrize("module", sorted(USERS))
def test_modules_extend_the_fragments_and_document_no_copy(module):
    source = open(os.path.join(ROOT, "plugins", "modules", module + ".py"), encoding="utf-8").read()
    tree = ast.parse(source)
    doc = next(
        yaml.safe_load(n.value.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "DOCUMENTATION"
    )
    assert set(USERS[module]) <= set(doc.get("extends_documentation_fragment", []))
    for group in USERS[module]:
        assert "ca_options.%s(" % {"medimg.dicom_tls.ca": "issuer"}.get(group, group.rsplit(".", 1)[-1]) in source
        # An option of the group is written in the module only to say what differs there
        # (required, choices, or a description of its own), never as a full copy of the fragment's.
        fragment = yaml.safe_load(GROUPS[group][0])["options"]
        for name, own in (doc.get("options") or {}).items():
            if name in fragment:
                assert own != fragment[name], "%s: %s copies the fragment %s" % (module, name, group)
                assert "type" not in own or own["type"] == fragment[name]["type"], (module, name)
