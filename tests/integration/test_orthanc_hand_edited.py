"""orthanc_config on an orthanc.json edited by hand, judged by Orthanc 1.10.1 itself: each edit of
Debian's stock file is first given to a real Orthanc (does it start and answer a C-ECHO?). Where it
starts, orthanc_config must take the file, keep what the editor made (line endings, BOM, bytes,
link) and Orthanc must start on the result with the values set; where it does not, orthanc_config
must refuse it naming the file and change nothing. The UTF-8 BOM alone is in test_orthanc_config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from support import module_run
from support.servers import Listener, dcmtk, free_port

STOCK = "/etc/orthanc"
ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"

pytestmark = [
    pytest.mark.skipif(
        not os.path.isfile(os.path.join(STOCK, "orthanc.json")), reason="Debian's orthanc not installed"
    ),
    pytest.mark.skipif(os.environ.get("DICOM_TLS_NETNS") != "1", reason="live listeners only inside scripts/netns.sh"),
]

_JOBS = '"ConcurrentJobs" : 2,'
_PLUGINS = '"/usr/share/orthanc/plugins/"\n  ],'
# name -> the edit of the stock text (str -> bytes), as an editor or a colleague would make it
EDITS = {
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "utf8-bom-and-crlf": lambda t: b"\xef\xbb\xbf" + t.replace("\n", "\r\n").encode(),
    "trailing-comma-after-last-option": lambda t: (t.rstrip().rstrip("}").rstrip() + ",\n}\n").encode(),
    "trailing-comma-in-a-list": lambda t: t.replace(_PLUGINS, _PLUGINS.replace('/"', '/",')).encode(),
    "trailing-comma-in-an-object": lambda t: t.replace(
        _JOBS, _JOBS + '\n  "HandEdited" : { "By" : "pacs-admin", },'
    ).encode(),
    "option-twice-in-the-file": lambda t: t.replace(_JOBS, _JOBS + "\n  " + _JOBS).encode(),
    "latin1-bytes-in-a-string": lambda t: t.replace('"Name" : "Orthanc"', '"Name" : "Kr\xe4nkenhaus"').encode(
        "latin-1"
    ),
    "single-quoted-option-name": lambda t: t.replace(_JOBS, _JOBS.replace('"', "'")).encode(),
    "hash-comment": lambda t: t.replace(_JOBS, "# jobs\n  " + _JOBS).encode(),
    "nan-value": lambda t: t.replace(_JOBS, _JOBS.replace("2", "NaN")).encode(),
}


def _prepared(tmp_path) -> tuple[str, str, int]:
    """(folder, stock text with free ports and a private storage folder, DICOM port)."""
    conf = str(tmp_path / "orthanc")
    shutil.copytree(STOCK, conf)
    db = tmp_path / "db"
    db.mkdir()
    port = free_port()
    with open(os.path.join(conf, "orthanc.json"), encoding="utf-8") as fh:
        text = fh.read()
    for key, value in (("DicomPort", port), ("HttpPort", free_port())):
        text = re.sub(r'"%s" : \d+' % key, '"%s" : %d' % (key, value), text)
    text = re.sub(r'"(Storage|Index)Directory" : "[^"]*"', r'"\1Directory" : "%s"' % db, text)
    return conf, text, port


def _answers(conf: str, port: int, aet: str, workdir: str) -> bool | None:
    """Orthanc started on ``conf``: None when it does not start, else whether it answers echoscu."""
    os.makedirs(workdir, exist_ok=True)
    try:
        orthanc = Listener([ORTHANC, conf], port, workdir)
    except RuntimeError:
        return None
    with orthanc:
        echo = subprocess.run([dcmtk("echoscu"), "-aec", aet, "127.0.0.1", str(port)], capture_output=True,
                              timeout=30, check=False)  # fmt: skip
    return echo.returncode == 0


def _settings(tmp_path) -> dict:
    plugins = tmp_path / "no-plugins"
    plugins.mkdir(exist_ok=True)
    # a list (rendered on several lines), a number, and the AE title echoscu must then call
    return {"DicomAet": "HANDEDIT", "DicomCheckCalledAet": True, "Plugins": [str(plugins)], "ConcurrentJobs": 3}


def _snapshot(conf: str) -> dict:
    return {n: open(os.path.join(conf, n), "rb").read() for n in sorted(os.listdir(conf))}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_hand_edited_orthanc_json_judged_as_orthanc_judges_it(tmp_path, edit):
    conf, text, port = _prepared(tmp_path)
    path = os.path.join(conf, "orthanc.json")
    with open(path, "wb") as fh:
        fh.write(EDITS[edit](text))
    before = _snapshot(conf)
    oracle = _answers(conf, port, "ORTHANC", str(tmp_path / "as-edited"))
    failed, res = module_run.run("orthanc_config", {"config_dir": conf, "settings": _settings(tmp_path)})
    if oracle is None:  # Orthanc refuses the file: so does orthanc_config, and it changes nothing
        assert failed and res["msg"].startswith(path + ": not valid JSON"), res
        assert _snapshot(conf) == before
        return
    assert oracle is True
    assert not failed and res["changed"], res.get("msg")
    data = open(path, "rb").read()
    if "crlf" in edit:
        assert data.count(b"\r\n") == data.count(b"\n") > 800, "line endings mixed"
    assert data.startswith(b"\xef\xbb\xbf") == ("bom" in edit)
    if "latin1" in edit:
        assert b'"Name" : "Kr\xe4nkenhaus"' in data  # the editor's bytes kept as they are
    failed, again = module_run.run("orthanc_config", {"config_dir": conf, "settings": _settings(tmp_path)})
    assert not failed and not again["changed"], again
    assert _answers(conf, port, "HANDEDIT", str(tmp_path / "configured")) is True


def test_orthanc_json_that_is_a_link_stays_a_link(tmp_path):
    """orthanc.json as a link to a file kept elsewhere (a site repository): Orthanc reads through it;
    orthanc_config writes the target atomically and keeps the link. In a folder other users can write,
    the link is refused (files.py's symlink policy) and nothing changes."""
    conf, text, port = _prepared(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    target = str(site / "orthanc.json")
    with open(target, "w", encoding="utf-8") as fh:
        fh.write(text)
    link = os.path.join(conf, "orthanc.json")
    os.remove(link)
    os.symlink(target, link)
    assert _answers(conf, port, "ORTHANC", str(tmp_path / "as-linked")) is True
    failed, res = module_run.run("orthanc_config", {"config_dir": conf, "settings": _settings(tmp_path)})
    assert not failed and res["changed"], res.get("msg")
    assert os.path.islink(link) and os.readlink(link) == target
    assert '"DicomAet" : "HANDEDIT"' in open(target, encoding="utf-8").read()
    assert _answers(conf, port, "HANDEDIT", str(tmp_path / "configured")) is True

    os.chmod(conf, 0o777)  # anyone could have planted the link
    before = open(target, "rb").read()
    failed, res = module_run.run(
        "orthanc_config", {"config_dir": conf, "settings": dict(_settings(tmp_path), ConcurrentJobs=4)}
    )
    assert failed and "is a symbolic link in %s, a directory other users can write" % conf in res["msg"], res
    assert os.path.islink(link) and open(target, "rb").read() == before
