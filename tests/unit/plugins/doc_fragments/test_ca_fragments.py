"""The shared option groups say the same in their doc fragment (plugins/doc_fragments/) and their
argument spec (plugins/module_utils/ca_options.py, shared_options.py), and every module that takes a
group both extends the fragment and builds its spec from that helper (so a default lives once); no
module spells out a shared option itself."""

from __future__ import annotations

import ast
import os

import pytest
import yaml
from ansible_collections.medimg.dicom_tls.plugins.doc_fragments import backup, privatekey, trust
from ansible_collections.medimg.dicom_tls.plugins.doc_fragments.ca import ModuleDocFragment
from ansible_collections.medimg.dicom_tls.plugins.module_utils import ca_options, shared_options

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
# group -> (fragment text, argument spec, the call a module builds its spec with)
GROUPS = {
    "medimg.dicom_tls.ca": (ModuleDocFragment.DOCUMENTATION, ca_options.issuer(required=False), "ca_options.issuer("),
    "medimg.dicom_tls.ca.issuance": (ModuleDocFragment.ISSUANCE, ca_options.issuance(), "ca_options.issuance("),
    "medimg.dicom_tls.ca.private_key": (
        ModuleDocFragment.PRIVATE_KEY,
        ca_options.private_key(),
        "ca_options.private_key(",
    ),
    "medimg.dicom_tls.privatekey": (
        privatekey.ModuleDocFragment.DOCUMENTATION,
        shared_options.privatekey(),
        "shared_options.privatekey(",
    ),
    "medimg.dicom_tls.trust": (trust.ModuleDocFragment.DOCUMENTATION, shared_options.trust(), "shared_options.trust("),
    "medimg.dicom_tls.backup": (
        backup.ModuleDocFragment.DOCUMENTATION,
        shared_options.backup(),
        "shared_options.backup(",
    ),
}
USERS = {
    "dicom_cert": [
        "medimg.dicom_tls.ca",
        "medimg.dicom_tls.ca.issuance",
        "medimg.dicom_tls.ca.private_key",
        "medimg.dicom_tls.privatekey",
        "medimg.dicom_tls.backup",
    ],
    "dicom_pkcs12": ["medimg.dicom_tls.ca", "medimg.dicom_tls.ca.issuance", "medimg.dicom_tls.ca.private_key"],
    "dicom_csr_sign": ["medimg.dicom_tls.ca", "medimg.dicom_tls.ca.issuance", "medimg.dicom_tls.backup"],
    "dicom_crl": ["medimg.dicom_tls.ca"],
    "dicom_cert_info": ["medimg.dicom_tls.privatekey"],
    "dicom_sign": ["medimg.dicom_tls.privatekey", "medimg.dicom_tls.trust"],
    "dicom_tls_echo": ["medimg.dicom_tls.privatekey", "medimg.dicom_tls.trust"],
    "dcmtk_option_files": ["medimg.dicom_tls.backup"],
    "dicom_truststore": ["medimg.dicom_tls.backup"],
    "orthanc_config": ["medimg.dicom_tls.backup"],
}
MODULES = sorted(
    name[:-3]
    for name in os.listdir(os.path.join(ROOT, "plugins", "modules"))
    if name.endswith(".py") and not name.startswith("_")
)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_fragment_and_spec_agree(group):
    text, spec, _call = GROUPS[group]
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
        assert GROUPS[group][2] in source
        # An option of the group is written in the module only to say what differs there
        # (required, choices, or a description of its own), never as a full copy of the fragment's.
        fragment = yaml.safe_load(GROUPS[group][0])["options"]
        for name, own in (doc.get("options") or {}).items():
            if name in fragment:
                assert own != fragment[name], "%s: %s copies the fragment %s" % (module, name, group)
                assert "type" not in own or own["type"] == fragment[name]["type"], (module, name)


# Options that share a name with a group's but knowingly differ in form, with the reason.
DIFFERENT_FORM = {
    ("dicom_crl", "renew_before_days"): "a CRL lives days, not years: fractions of a day are allowed (float)",
    ("dicom_metrics", "crl_files"): "each CRL file comes with the CA label of its series ({ca, path})",
}


@pytest.mark.parametrize("module", MODULES)
def test_shared_options_come_from_their_group(module):
    """An option that has the name of a shared group's option has its type, elements, default and no_log
    (so its form cannot drift from the group's), unless DIFFERENT_FORM says why not."""
    from support.module_run import argument_spec

    spec = argument_spec(module)
    for group, (_text, group_spec, _call) in GROUPS.items():
        for name in set(group_spec) & set(spec):
            if (module, name) in DIFFERENT_FORM:
                assert spec[name].get("type") != group_spec[name]["type"] or spec[name].get("elements") != (
                    group_spec[name].get("elements")
                ), "%s.%s is listed as different but has the form of %s" % (module, name, group)
                continue
            for key in ("type", "elements", "default", "no_log"):
                assert spec[name].get(key) == group_spec[name].get(key), (module, name, group, key)
