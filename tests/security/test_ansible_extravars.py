"""ansible.playbook hands its extra_vars to Ansible marked !unsafe: a value that came from data (here a
command's output) is text to Ansible too, never a template its unsandboxed Jinja2 would run."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from runbook.execute.clients.ansible import unsafe_extravars
from tests.security.cases import TEMPLATE_PAYLOADS, with_canary

ANSIBLE_ESCAPES = {
    "lookup-pipe": "{{ lookup('pipe', 'touch @CANARY@') }}",
    "query-pipe": "{{ query('pipe', 'touch @CANARY@') }}",
    "cycler-globals": TEMPLATE_PAYLOADS["cycler-globals"],
    # Ansible reads a first line `#jinja2:` as other delimiters for the rest: no "{" in the payload
    "jinja2-override": "#jinja2:variable_start_string:'[[',variable_end_string:']]'\n[[ lookup('pipe', 'touch @CANARY@') ]]",
}


def test_every_string_ansible_could_template_is_tagged_unsafe_and_the_document_reads_back() -> None:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!unsafe", lambda loader, node: ("UNSAFE", loader.construct_scalar(node)))
    override = "#jinja2:variable_start_string:'[['\n[[ x ]]"
    doc = {"a": "{{ x }}", "n": 3, "ok": True, "items": ["{{ y }}", {"k": "v"}], "none": None, "o": override,
           "mode": "0644", "yes": "yes", "ver": "2.0"}  # fmt: skip
    back = yaml.load(unsafe_extravars(doc), Loader=Loader)
    assert back == {
        "a": ("UNSAFE", "{{ x }}"),
        "n": 3,
        "ok": True,
        "items": [("UNSAFE", "{{ y }}"), {"k": "v"}],  # no "{": nothing to template, a plain string
        "none": None,
        "o": ("UNSAFE", override),
        "mode": "0644",  # a string still (not YAML 1.1's octal 420), "yes" not true, "2.0" not a float
        "yes": "yes",
        "ver": "2.0",
    }


@pytest.mark.slow
@pytest.mark.parametrize("payload", list(ANSIBLE_ESCAPES))
def test_ansible_never_templates_a_value_from_data(
    payload: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    canary = tmp_path / "PWNED"
    value = with_canary(ANSIBLE_ESCAPES[payload], canary)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "value.txt").write_text(value)
    out = tmp_path / "written.txt"
    (tmp_path / "playbooks" / "site.yml").write_text(
        textwrap.dedent(
            f"""\
            - hosts: all
              gather_facts: false
              tasks:
                - copy: {{content: "{{{{ x }}}}", dest: "{out}"}}
            """
        )
    )
    (tmp_path / "playbooks" / "via.yml").write_text(
        json.dumps(
            {
                "name": "via",
                "hosts": "all",
                "steps": [
                    {"name": "read", "shell": "cat value.txt", "register": "got", "changes": False},
                    {
                        "name": "converge",
                        "ansible.playbook": {"playbook": "site.yml", "extra_vars": {"x": "{{ got.stdout }}"}},
                    },
                ],
            }
        )
    )
    (tmp_path / "inv").write_text("localhost ansible_connection=local ansible_python_interpreter=python3\n")
    res = cli("exec", "via", "-i", "inv", "--yes")
    assert res.exit_code == 0, res.output
    assert out.read_text() == value  # Ansible wrote the text itself
    assert not canary.exists()
