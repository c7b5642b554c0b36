# Copyright: contributors to medimg.dicom_tls
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a module reports: the one plan shape every module returns (``changed``, ``actions``, ``diff``),
and the plain-text tables a person reads (the fleet's C-ECHO matrix and certificate expiry report)."""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------- the one plan shape
#
# Every engine plans a list of Action (one per file or listener it writes, removes, starts or stops,
# each with its reason) and then applies it; every module returns it as ``actions``, ``changed`` is
# "the list is not empty", and diff mode shows one Ansible diff per action, with metadata only.

ACTION_WORDS = (
    "created",
    "updated",
    "renewed",
    "regenerated",
    "renumbered",
    "removed",
    "signed",
    "copied",
    "started",
    "restarted",
    "stopped",
    "recovered",  # an update a killed run left half done, completed from its journal
    "attributes_changed",  # same content; mode, owner, group, SELinux context or attributes set
)


@dataclass
class Action:
    """One step of a plan. ``role`` (which of the engine's files, e.g. privatekey or chain), ``before``
    and ``after`` (metadata for the diff: subjects, serials, dates, modes; never key bytes) are for the
    engine and the diff, not part of the reported shape."""

    path: str
    action: str
    reason: str
    role: str = field(default="", compare=False)
    before: dict | str | None = field(default=None, compare=False, repr=False)
    after: dict | str | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict:
        return {"path": self.path, "action": self.action, "reason": self.reason}


def _text(side) -> str:
    if side is None:
        return ""
    if isinstance(side, str):
        return side if not side or side.endswith("\n") else side + "\n"
    lines = []
    for key, value in side.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        lines.append("%s: %s\n" % (key, "" if value is None else value))
    return "".join(lines)


def diff(actions: list[Action], before: dict | None = None, after: dict | None = None) -> list[dict]:
    """Ansible's diff for a plan: one ``{before_header, after_header, before, after}`` per action, headed
    by its path. The sides are the action's own ``before``/``after``, else those of its path in the
    maps ``before``/``after`` (metadata: a dict shown as ``key: value`` lines, or text), else what the
    action says (absent before a creation, absent after a removal)."""
    out = []
    for a in actions:
        b = a.before if a.before is not None else (before or {}).get(a.path)
        f = a.after if a.after is not None else (after or {}).get(a.path)
        if b is None:
            b = {"state": "absent"} if a.action in ("created", "started") else {"state": "present"}
        if f is None:
            f = {"state": "absent"} if a.action in ("removed", "stopped") else {"state": a.action, "reason": a.reason}
        out.append({"before_header": a.path, "after_header": a.path, "before": _text(b), "after": _text(f)})
    return out


def report(actions: list[Action], diff_mode: bool = False, before=None, after=None, **own) -> dict:
    """A module's result in the one shape: its own keys, then ``changed`` (the plan was not empty),
    ``actions`` (``[{path, action, reason}]``) and, in diff mode when the plan is not empty, ``diff``
    (see diff())."""
    result = dict(own)
    result["changed"] = bool(actions)
    result["actions"] = [a.as_dict() for a in actions]
    if diff_mode and actions:
        result["diff"] = diff(actions, before, after)
    return result


# Statuses that mean nothing answered at all (TCP refused, timeout): never a TLS or DICOM refusal.
NO_LISTENER = ("connection_refused", "timeout")


def as_expected(status: str, expect: str = "success") -> bool:
    """The one rule for a C-ECHO outcome: an expected success needs ``success``; an expected
    refusal needs a real refusal by a listener (TLS handshake, certificate, association), so a
    dead or absent listener never passes as a revocation."""
    if (expect or "success") == "success":
        return status == "success"
    return status != "success" and status not in NO_LISTENER


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(), "-".join("-" * (w + 2) for w in widths)]
    for row in rows:
        out.append("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    return "\n".join(out)


def echo_matrix(results: list[dict] | dict) -> str:
    """Rows are calling nodes (SCU), columns the called nodes (SCP); a cell is ``ok`` or the status.

    Each result has ``status`` and names its pair with ``client`` and ``server``; a result of
    dicom_tls_echo (its ``results`` list, or the registered result itself) names them with
    ``calling_ae_title`` and ``host``:``port`` instead. ``reason`` is listed under the table for
    every pair that did not match its expectation (``expect``: success unless said otherwise).
    """
    if isinstance(results, dict) and isinstance(results.get("results"), list):
        results = results["results"]
    if not isinstance(results, list):
        raise TypeError("expected a list of results, got %s" % type(results).__name__)
    cells: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    for number, res in enumerate(results, 1):
        if not isinstance(res, dict):
            raise TypeError("every result must be a dict, got %s" % type(res).__name__)
        client = res.get("client", res.get("calling_ae_title"))
        server = res.get("server")
        if server is None and res.get("host") is not None:
            server = "%s:%s" % (res["host"], res.get("port", ""))
        missing = [
            name
            for name, value in (
                ("client (or calling_ae_title)", client),
                ("server (or host and port)", server),
                ("status", res.get("status")),
            )
            if value is None
        ]
        if missing:
            raise ValueError("result %d has no %s" % (number, ", ".join(missing)))
        client, server, status = str(client), str(server), str(res["status"])
        expect = res.get("expect", "success")
        ok = as_expected(status, expect)
        if status == "success":
            cell = "ok"
        elif status in NO_LISTENER:
            cell = "no listener" if status == "connection_refused" else "timeout"
        else:
            cell = "refused" if expect == "failure" else status
        if not ok:
            cell = "FAIL " + cell
            problems.append("%s -> %s: %s (expected %s)" % (client, server, res.get("reason") or status, expect))
        cells[(client, server)] = cell
    clients, servers = list(dict.fromkeys(c for c, _s in cells)), list(dict.fromkeys(s for _c, s in cells))
    header = ["SCU \\ SCP"] + servers
    rows = [[c] + [cells.get((c, s), "-") for s in servers] for c in clients]
    text = _table(header, rows)
    total = len(results)
    text += "\n%d of %d pairs as expected" % (total - len(problems), total)
    if problems:
        text += "\n" + "\n".join(problems)
    return text


def expiry_table(certificates: list[dict], warn_days: int = 30) -> str:
    """One line per certificate, soonest expiry first, with a state: ok, renew soon, EXPIRED."""
    if not isinstance(certificates, list):
        raise TypeError("expected a list of certificate facts, got %s" % type(certificates).__name__)
    rows = []
    for cert in sorted(certificates, key=lambda c: int(c["days_remaining"])):
        days = int(cert["days_remaining"])
        state = "EXPIRED" if days < 0 else ("renew soon" if days <= warn_days else "ok")
        rows.append([str(cert.get(key, "")) for key in ("node", "subject", "not_after")] + [str(days), state])
    return _table(["node", "subject", "not_after", "days", "state"], rows)
