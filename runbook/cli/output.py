"""Machine-readable results: one JSON document, or JUnit XML for CI."""

from __future__ import annotations

import json
from typing import Any


def json_document(result: Any, runbook: Any, audit_path: str | None, dry_run: bool) -> str:
    from runbook.plan import undo

    doc = result.as_dict()
    doc.update(
        {"runbook": runbook.name, "runbook_file": str(runbook.path), "dry_run": dry_run, "audit": audit_path}
    )
    doc["cannot_undo"] = undo.as_dicts(runbook)  # steps whose changes a rollback cannot undo
    return json.dumps(doc, indent=2, default=str)


def junit_xml(result: Any, runbook: Any) -> str:
    from xml.etree import ElementTree as ET

    suites = ET.Element("testsuites", name=f"runbook {runbook.name}")
    for host, hr in result.hosts.items():
        recs = hr.records
        suite = ET.SubElement(
            suites, "testsuite", name=f"{runbook.name}@{host}", tests=str(len(recs)),
            failures=str(sum(r.outcome == "failed" for r in recs)), skipped=str(sum(r.outcome == "skipped" for r in recs)),
            time=f"{sum(r.duration for r in recs):.3f}",
        )  # fmt: skip
        for r in recs:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"{runbook.name}.{host}.{r.phase}",
                name=r.name,
                time=f"{r.duration:.3f}",
            )
            if r.outcome == "failed":
                f = ET.SubElement(case, "failure", message=r.msg[:500] or "failed", type=r.module)
                f.text = "\n".join(x for x in (r.command and f"$ {r.command}", r.stdout, r.stderr) if x)
            elif r.outcome == "skipped":
                ET.SubElement(case, "skipped", message=r.msg or "skipped")
            if r.stdout:
                ET.SubElement(case, "system-out").text = r.stdout
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
