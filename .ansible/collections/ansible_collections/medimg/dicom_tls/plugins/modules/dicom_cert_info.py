#!/usr/bin/python
# TEMPORARY local stand-in (never committed).
from __future__ import annotations
import datetime
from ansible.module_utils.basic import AnsibleModule
from cryptography import x509
m = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True)), supports_check_mode=True)
c = x509.load_pem_x509_certificate(open(m.params["path"], "rb").read())
now = datetime.datetime.now(datetime.UTC)
m.exit_json(changed=False, subject=c.subject.rfc4514_string(), not_after=c.not_valid_after_utc.isoformat(), days_remaining=(c.not_valid_after_utc - now).days)
