"""`runbook validate` and `runbook plan` start fast enough for a pre-commit hook and an editor: they
import none of the heavy libraries a static check or a local dry run does not use (SSH, Ansible,
jsonschema for plain arguments, cryptography without an audit trail, pygments for a log, the
installed packages' metadata for built-in step kinds, logging and a thread pool for one host, the
facts' parsers the pre-flight checks use when they run); a static check also starts no process (no
subprocess unless an inventory is a script or a template a pipe lookup) and formats no traceback.
docs/performance.md, "Planning", has the timings; no test here times anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# runs the CLI in this process, then says which of the modules were imported
PROBE = """
import sys
from runbook.cli.main import cli
try:
    cli.main(args=sys.argv[1:], prog_name="runbook", standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc.code
heavy = ("paramiko", "ansible", "ansible_runner", "jsonschema", "cryptography", "pygments", "rich", "socket",
         "tomllib", "importlib.metadata", "runbook.execute.engine", "runbook.audit.keys", "subprocess", "traceback",
         "logging", "concurrent.futures", "runbook.facts.memory", "runbook.facts.disk",
         "runbook.facts.dotenv", "runbook.facts.net", "runbook.facts.versions")
print("imported:", *(m for m in heavy if m in sys.modules))
"""


def _imported(args: list[str], cwd: Path, home: Path) -> set[str]:
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(home)},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    [line] = [x for x in res.stdout.splitlines() if x.startswith("imported:")]
    return set(line.split()[1:])


def test_validate_imports_nothing_heavy(tmp_path: Path) -> None:
    assert _imported(["validate", "deploy-4gb", "-i", "inventories/local"], REPO, tmp_path) == set()


def test_a_local_dry_run_imports_no_ssh_ansible_schema_crypto_or_highlighter(tmp_path: Path) -> None:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.conf.j2").write_text("name = {{ name }}\nport = {{ port | int }}\n")
    (tmp_path / "hosts").write_text("[app]\nlocalhost ansible_connection=local\n")
    (tmp_path / "playbooks" / "local.yml").write_text(f"""
hosts: app
vars: {{dir: "{tmp_path}/app", name: demo, port: 8080}}
steps:
  - file: {{path: "{{{{ dir }}}}", state: directory, mode: "0755"}}
  - template: {{src: app.conf.j2, dest: "{{{{ dir }}}}/app.conf", mode: "0640"}}
  - copy: {{content: "v1\\n", dest: "{{{{ dir }}}}/VERSION"}}
  - command: ls -- {{{{ dir | quote }}}}
    register: listing
  - shell: echo {{{{ name | quote }}}}
    changed_when: false
""")
    loaded = _imported(["plan", "playbooks/local.yml", "-i", "hosts"], tmp_path, tmp_path)
    # the console (rich imports traceback) and the local run (its commands run through subprocess)
    assert loaded <= {"rich", "traceback", "socket", "subprocess", "runbook.execute.engine"}, loaded
    assert not (tmp_path / "app").exists()  # a dry run


# runs the CLI in this process, then lists the module-level patterns (lazy_re) it compiled
PATTERNS_PROBE = """
import sys
from runbook.cli.main import cli
from runbook.model.lazyre import _Lazy
try:
    cli.main(args=sys.argv[1:], prog_name="runbook", standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc.code
for name, module in list(sys.modules.items()):
    if name.startswith("runbook."):
        for attr, value in vars(module).items():
            if isinstance(value, _Lazy):
                print("compiled" if "match" in vars(value) else "not compiled", f"{name}.{attr}")
"""


def test_a_static_check_compiles_only_the_patterns_it_uses(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-c", PATTERNS_PROBE, "validate", "deploy-4gb", "-i", "inventories/local"], cwd=REPO,
        capture_output=True, text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    compiled = {line.split()[-1] for line in res.stdout.splitlines() if line.startswith("compiled")}
    idle = {line.split()[-1] for line in res.stdout.splitlines() if line.startswith("not compiled")}
    # the inventory's host names and the templates' plain outputs are read; facts are not gathered,
    # no output is redacted, no IPv6 address is in the inventory
    assert {"runbook.model.hostpattern._HOSTNAME", "runbook.render.templar._OUTPUT_PATH"} <= compiled
    assert {
        "runbook.facts.postgres._URI", "runbook.facts.postgres._TOC", "runbook.render.secrets._VALUE",
        "runbook.model.hostpattern._IPV6_ADDRESS",
    } <= idle  # fmt: skip
