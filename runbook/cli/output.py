"""Machine-readable results: one JSON document, or JUnit XML for CI."""

from __future__ import annotations

import json
import os
from typing import Any

from runbook.model.lazyre import lazy_re

# terminal control sequences (CSI colours, OSC titles/links, other ESC pairs) and control characters
# a command may print: never passed on to a terminal, a CI log, a JSON document or JUnit XML
_ANSI = lazy_re(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROL = lazy_re(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# what `plain` removes or rewrites: control characters, ESC (\x1b) and CSI (\x9b) among them, and \r
_CLEAN_NEEDED = lazy_re(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def no_color() -> bool:
    """https://no-color.org: NO_COLOR set to anything non-empty; also a dumb terminal."""
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


def plain(text: Any) -> str:
    """``text`` without terminal escape sequences or control characters (newlines and tabs stay;
    a carriage return becomes a newline, as a progress bar's last state)."""
    s = text if isinstance(text, str) else str(text)
    if not _CLEAN_NEEDED.search(s):  # nothing below would change it (the common case)
        return s
    if "\x1b" in s or "\x9b" in s:
        s = _ANSI.sub("", s)
    s = s.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub("", s)


def plain_data(value: Any) -> Any:
    """Every string inside ``value`` (dicts, lists) made ``plain``."""
    if isinstance(value, str):
        return plain(value)
    if isinstance(value, dict):
        return {plain(k) if isinstance(k, str) else k: plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_data(v) for v in value]
    return value


def json_document(result: Any, runbook: Any, audit_path: str | None, dry_run: bool) -> str:
    """``--output json``: the run's document (runbook.session.result.document), made plain."""
    from runbook.session.result import document

    doc = document(result, runbook, audit_path, dry_run)
    return json.dumps(plain_data(json.loads(json.dumps(doc, default=str))), indent=2)


def junit_xml(result: Any, runbook: Any) -> str:
    """JUnit XML as Jenkins and GitLab read it (the common JUnit XSD): <testsuites> and each
    <testsuite> (one per host) carry name, tests, failures, errors, skipped and time; each step is a
    <testcase name classname time>. A failed step is a <failure>; one that failed because the runbook
    itself was wrong (a template or argument error) is an <error>; a host that could not be reached
    is a testcase with an <error>. Text is made plain (no terminal escapes, no control characters,
    which XML 1.0 cannot hold)."""
    from xml.etree import ElementTree as ET

    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    suites = ET.Element("testsuites", name=plain(f"runbook {runbook.name}"))
    for host, hr in result.hosts.items():
        recs = list(hr.records)
        counts = {
            "tests": len(recs),
            "failures": sum(r.outcome == "failed" and r.error != "render" for r in recs),
            "errors": sum(r.outcome == "failed" and r.error == "render" for r in recs),
            "skipped": sum(r.outcome == "skipped" for r in recs),
            "time": sum(r.duration or 0.0 for r in recs),
        }
        unreachable = bool(hr.stats.get("unreachable")) and not any(r.outcome == "failed" for r in recs)
        if unreachable:
            counts["tests"] += 1
            counts["errors"] += 1
        suite = ET.SubElement(suites, "testsuite", name=plain(f"{runbook.name}@{host}"), hostname=plain(host))
        _counts(suite, counts)
        for k in totals:
            totals[k] += counts[k]
        for r in recs:
            case = ET.SubElement(
                suite, "testcase", name=plain(r.name), classname=plain(f"{runbook.name}.{host}.{r.phase}"),
                time=f"{r.duration or 0.0:.3f}",
            )  # fmt: skip
            if r.outcome == "failed":
                tag = "error" if r.error == "render" else "failure"
                f = ET.SubElement(case, tag, message=plain(r.msg[:500] or "failed"), type=plain(r.module))
                f.text = plain("\n".join(x for x in (r.command and f"$ {r.command}", r.stdout, r.stderr) if x))
            elif r.outcome == "skipped":
                ET.SubElement(case, "skipped", message=plain(r.msg or "skipped"))
            if r.stdout:
                ET.SubElement(case, "system-out").text = plain(r.stdout)
        if unreachable:
            case = ET.SubElement(
                suite, "testcase", name="host reachable", classname=plain(f"{runbook.name}.{host}"), time="0.000"
            )
            ET.SubElement(case, "error", message=plain(result.message or "host unreachable"), type="unreachable")
    _counts(suites, totals)
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def junit_error(exc: Any) -> str:
    """The JUnit report of a run that could not start (a validation error, a refusal): one testcase
    with an <error> saying why, so a CI server shows it instead of an empty or missing report."""
    from xml.etree import ElementTree as ET

    counts = {"tests": 1, "failures": 0, "errors": 1, "skipped": 0, "time": 0.0}
    suites = ET.Element("testsuites", name="runbook")
    _counts(suites, counts)
    suite = ET.SubElement(suites, "testsuite", name="runbook")
    _counts(suite, counts)
    case = ET.SubElement(suite, "testcase", name="start the run", classname="runbook", time="0.000")
    err = ET.SubElement(case, "error", message=plain(getattr(exc, "message", str(exc)))[:500], type=type(exc).__name__)
    err.text = plain(str(exc))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _counts(element: Any, counts: dict[str, Any]) -> None:
    for k in ("tests", "failures", "errors", "skipped"):
        element.set(k, str(counts[k]))
    element.set("time", f"{counts['time']:.3f}")
