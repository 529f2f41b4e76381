"""Rendering: Jinja2 with StrictUndefined, Ansible's filters, lazy variables, native types, the
run/host context, and registered output that is never templated again."""

from __future__ import annotations

import json

import pytest

from tests.core.conftest import Project


def messages(project: Project, *args: str) -> dict[str, str]:
    res, doc = project.exec_json("r", *args)
    assert res.exit_code == 0, res.output
    return {name: s["msg"] for name, s in project.steps(doc).items()}


def debug_steps(exprs: dict[str, str]) -> str:
    lines = []
    for name, expr in exprs.items():
        lines.append(f"  - name: {name}\n    debug:\n      msg: {json.dumps(expr)}\n")
    return "".join(lines)


FILTERS = {
    "default": ("{{ not_defined | default('fallback') }}", "fallback"),
    "default on defined": ("{{ word | default('fallback') }}", "hello"),
    "bool": ("{{ 'yes' | bool }} {{ 'off' | bool }} {{ 1 | bool }}", "True False True"),
    "int": ("{{ '42' | int + 1 }} {{ 'x' | int }} {{ '0x1f' | int(base=16) }}", "43 0 31"),
    "to_json": ("{{ {'k': [1, 2], 'b': true} | to_json }}", '{"k": [1, 2], "b": true}'),
    "from_json": ("{{ ('{\"x\": 5}' | from_json).x + 1 }}", "6"),
    "b64encode": ("{{ 'hello' | b64encode }}", "aGVsbG8="),
    "b64decode": ("{{ 'aGVsbG8=' | b64decode }}", "hello"),
    # written as Ansible users write it (a YAML double-quoted "\\1" is the template's \1, kept as
    # ansible-core keeps it); the template's \\1 would be a backslash and a 1 to ansible-core
    "regex_replace": ("{{ 'a-b-c' | regex_replace('-(\\w)', '_\\1') }}", "a_b_c"),
    "regex_search": ("{{ 'version 2.10.3' | regex_search('[0-9.]+') }}", "2.10.3"),
    "basename": ("{{ '/srv/app/etc/app.conf' | basename }}", "app.conf"),
    "dirname": ("{{ '/srv/app/etc/app.conf' | dirname }}", "/srv/app/etc"),
    "quote": ('{{ "it\'s here" | quote }}', "'it'\"'\"'s here'"),
    "combine": (
        "{{ {'a': 1, 'b': {'c': 2}} | combine({'b': {'d': 3}}, recursive=True) | to_json }}",
        '{"a": 1, "b": {"c": 2, "d": 3}}',
    ),
    "dict2items": ("{{ {'x': 1, 'y': 2} | dict2items | map(attribute='key') | join(',') }}", "x,y"),
    "items2dict": ("{{ [{'key': 'a', 'value': 1}] | items2dict | to_json }}", '{"a": 1}'),
    "ternary": ("{{ (1 > 2) | ternary('big', 'small') }}", "small"),
    "to_nice_yaml": ("{{ {'b': 1, 'a': [2]} | to_nice_yaml | trim }}", "a:\n- 2\nb: 1"),
    "version test": ("{{ '2.10' is version('2.9', '>') }}", "True"),
    "flatten unique": ("{{ [[1, 2], [2, [3]]] | flatten | unique | join(' ') }}", "1 2 3"),
    "hash": (
        "{{ 'abc' | hash('sha256') }}",
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    ),
}


def test_ansible_filters(project: Project) -> None:
    project.runbook(
        "r",
        "hosts: localhost\nvars:\n  word: hello\nsteps:\n"
        + debug_steps({name: expr for name, (expr, _) in FILTERS.items()}),
    )
    got = messages(project)
    assert got == {name: want for name, (_, want) in FILTERS.items()}


def test_variables_are_lazy_and_refer_to_each_other(project: Project) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        vars:
          conf: "{{ base }}/etc/{{ name }}.conf"   # defined before what it uses
          base: /srv/app
          name: "{{ 'app' | upper }}"
          unused: "{{ this_is_never_defined }}"   # never used: not an error
        steps:
          - name: conf
            debug: {msg: "{{ conf }}"}
        """,
    )
    assert messages(project)["conf"] == "/srv/app/etc/APP.conf"


def test_precedence_extra_vars_over_runbook_vars_over_inventory(project: Project) -> None:
    project.inventory("localhost ansible_connection=local color=green size=S shape=circle\n")
    project.runbook(
        "r",
        """
        hosts: localhost
        vars: {color: red, size: M}
        steps:
          - name: all
            debug: {msg: "{{ color }} {{ size }} {{ shape }}"}
        """,
    )
    assert messages(project, "-e", "color=blue")["all"] == "blue M circle"


def test_single_expression_keeps_its_native_type(project: Project) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        vars:
          ports: [80, 443]
          first: "{{ ports[0] }}"
          count: "{{ ports | length }}"
          merged: "{{ {'a': 1} | combine({'b': {'c': 2}}) }}"
          text: "port {{ ports[0] }}"
        steps:
          - name: types
            debug: {msg: "{{ first | type_debug }} {{ count | type_debug }} {{ ports | type_debug }} {{ merged | type_debug }} {{ text | type_debug }}"}
          - name: arithmetic
            debug: {msg: "{{ first + count }}"}
          - name: loop over a rendered list
            debug: {msg: "{{ item * 2 }}"}
            loop: "{{ ports }}"
            register: doubled
          - name: results
            debug: {msg: "{{ doubled.results | map(attribute='item') | list }}"}
        """,
    )
    got = messages(project)
    assert got["types"] == "int int list dict str"
    assert got["arithmetic"] == "82"
    assert got["results"] == "[80, 443]"


def test_undefined_variable_is_an_error_naming_the_place(project: Project) -> None:
    path = project.runbook(
        "r",
        """
        hosts: localhost
        steps:
          - name: uses a missing variable
            debug: {msg: "{{ missing_var }}"}
        """,
    )
    res = project.exec("r")
    assert res.exit_code == 1
    assert f"{path}:4:5: undefined variable: 'missing_var' is undefined" in res.stdout
    assert "-e name=value" in res.stdout  # says what to do
    assert "Traceback" not in res.output
    res = project.plan("r")
    assert res.exit_code == 2
    res = project.cli("validate", "r", "-i", "inv")
    assert res.exit_code == 2
    assert "step 'uses a missing variable' (steps[0]): undefined variable: 'missing_var'" in res.stderr
    assert "(for host localhost)" in res.stderr


def test_a_variable_referring_to_itself_is_reported(project: Project) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        vars: {a: "{{ b }}", b: "{{ a }}"}
        steps:
          - debug: {msg: "{{ a }}"}
        """,
    )
    res = project.cli("validate", "r", "-i", "inv")
    assert res.exit_code == 2
    assert "variable 'a' refers to itself" in res.stderr or "variable 'b' refers to itself" in res.stderr


def test_strict_undefined_attribute_of_a_mapping(project: Project) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        vars: {app: {name: x}}
        steps:
          - debug: {msg: "{{ app.port }}"}
        """,
    )
    res = project.exec("r")
    assert res.exit_code == 1
    assert "undefined variable" in res.stdout and "has no attribute 'port'" in res.stdout


def test_run_host_and_inventory_context(project: Project) -> None:
    project.inventory(
        """
        [web]
        localhost ansible_connection=local app_env=prod
        """
    )
    project.runbook(
        "r",
        """
        name: ctx
        hosts: web
        steps:
          - name: context
            debug: {msg: "{{ run.runbook }} {{ run.status }} {{ host }} {{ inventory_hostname }} {{ app_env }} {{ group_names }} {{ groups['web'] }}"}
          - name: run id
            debug: {msg: "{{ run.id }}"}
        always:
          - name: final
            debug: {msg: "{{ run.status }}"}
        """,
    )
    res, doc = project.exec_json("r")
    assert res.exit_code == 0
    steps = project.steps(doc)
    assert steps["context"]["msg"] == "ctx running localhost localhost prod ['web'] ['localhost']"
    assert steps["run id"]["msg"] == doc["run_id"]
    assert steps["final"]["msg"] == "success"


def test_registered_output_containing_braces_is_not_templated_again(project: Project, tmp_path) -> None:
    project.runbook(
        "r",
        """
        hosts: localhost
        steps:
          - name: produce
            shell: "printf '%s' '{{ '{{' }} lookup_me {{ '}}' }}'"
            register: out
            changed_when: false
          - name: keep
            set_fact: {kept: "{{ out.stdout }}"}
          - name: echo
            debug: {msg: "{{ out.stdout }} / {{ kept }}"}
          - name: write
            copy: {content: "{{ out.stdout }}", dest: "{{ dest }}"}
        """,
    )
    dest = tmp_path / "out.txt"
    got = messages(project, "-e", f"dest={dest}")
    assert got["echo"] == "{{ lookup_me }} / {{ lookup_me }}"
    assert dest.read_text() == "{{ lookup_me }}"


def test_http_json_with_braces_is_data_not_a_template(project: Project, http_server) -> None:
    project.runbook(
        "r",
        f"""
        hosts: localhost
        steps:
          - name: fetch
            http.get: {{url: "{http_server.url}/template"}}
            register: page
          - name: show
            debug: {{msg: "{{{{ page.json.text }}}}"}}
        """,
    )
    assert messages(project)["show"] == "{{ this_is_not_defined }}"


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("{{ 'x' | from_json }}", "template error"),
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ 'abc' | b64_encode }}", "did you mean 'b64encode'?"),
    ],
)
def test_filter_errors_are_clean(project: Project, expr: str, says: str) -> None:
    project.runbook("r", "hosts: localhost\nsteps:\n" + debug_steps({"bad": expr}))
    res = project.exec("r")
    assert res.exit_code in (1, 2)
    assert says in res.output
    assert "Traceback" not in res.output


def test_vars_files_extra_vars_files_json_and_hostvars(project: Project) -> None:
    (project.root / "playbooks" / "vars").mkdir()
    (project.root / "playbooks" / "vars" / "common.yml").write_text("from_file: ff\nitems: [1, 2]\n")
    (project.root / "ev.yml").write_text("ev_file: yes-from-file\n")
    project.inventory("h1 ansible_connection=local only_h1=x1\nh2 ansible_connection=local\n")
    project.runbook(
        "r",
        """
        hosts: all
        vars_files: [vars/common.yml]
        vars:
          mine: "{{ from_file }}-{{ items | length }}"
        steps:
          - name: all
            debug: {msg: "{{ mine }} {{ ev_file }} {{ j }} {{ hostvars['h1'].only_h1 }} {{ groups['all'] }}"}
        """,
    )
    res, doc = project.exec_json("r", "-e", "@ev.yml", "-e", '{"j": [1]}')
    assert res.exit_code == 0, res.output
    for host in ("h1", "h2"):
        assert project.steps(doc, host)["all"]["msg"] == "ff-2 yes-from-file [1] x1 ['h1', 'h2']"
