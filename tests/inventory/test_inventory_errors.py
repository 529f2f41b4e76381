"""Malformed inventories: InventoryError names the file and line and says what to do; Ansible refuses them too."""

from __future__ import annotations

import pytest

from runbook.errors import InventoryError
from runbook.model.inventory import load_inventory

# name -> (file name, content, message fragment, line or None)
ERRORS = {
    "unclosed-quote": ("hosts", "[web]\nh1 msg='it is unbalanced\n", "No closing quotation", 2),
    "placeholder-apostrophe": (
        "hosts",
        "[matrix_servers]\n<your-server's domain> ansible_host=1.2.3.4\n",
        "No closing quotation",
        2,
    ),
    "children-undefined": (
        "hosts",
        "[OSEv3:children]\nmasters\nnfs\n[masters]\nm1\n",
        "includes undefined group 'nfs'",
        3,
    ),
    "vars-undefined-group": (
        "hosts",
        "[web]\nw1\n[db:vars]\nport=5432\n",
        "not valid for undefined group",
        3,
    ),
    "range-no-end": ("hosts", "[web]\nok1\nweb[1:]\n", "host range must specify end value", 3),
    "range-mixed": ("hosts", "[web]\nweb[a:5]\n", "Invalid host range", 2),
    "range-padding": ("hosts", "[web]\nweb[01:5]\n", "equal-length begin and end", 2),
    "range-unclosed": ("hosts", "[web]\nweb[1:2\n", "Invalid host range", 2),
    "range-step-zero": ("hosts", "[web]\nweb[1:4:0]\n", "Invalid host range", 2),
    "section-with-space": ("hosts", "[web]\nw1\n[bad section]\nh\n", "Invalid section entry", 3),
    "section-unknown-type": ("hosts", "[web:other]\nw1\n", "has unknown type", 1),
    "vars-without-equals": ("hosts", "[web]\nw1\n[web:vars]\njust_a_word\n", "Expected key=value", 4),
    "host-var-without-equals": ("hosts", "[web]\nw1 ansible_user\n", "Expected key=value", 2),
    "host-ending-colon": ("hosts", "[web]\nw1:\n", "ending in ':'", 2),
    "children-loop": ("hosts", "[a:children]\nb\n[b:children]\na\n", "recursive dependency loop", 4),
    "priority-not-int": ("hosts", "[w]\nh\n[w:vars]\nansible_group_priority=high\n", "must be an integer", 4),
    "unhashable-literal": ("hosts", "[w]\nh k={[1]:2}\n", "Cannot evaluate value", 2),
    "yaml-bad-indent": ("hosts.yml", "all:\n  hosts:\n    h1:\n   bad: x\n", "YAML syntax error", 4),
    "yaml-bad-flow": ("hosts.yml", "all:\n  vars:\n    x: [1, 2\n", "YAML syntax error", None),
    "yaml-hosts-list": ("hosts.yml", "all:\n  hosts:\n    - h1\n    - h2\n", 'Invalid "hosts" entry', 2),
    "yaml-children-list": ("hosts.yml", "all:\n  children: [web, db]\n", 'Invalid "children" entry', 2),
    "yaml-group-is-list": (
        "hosts.yml",
        "all:\n  children:\n    web:\n      - w1\n",
        "not a known host nor group",
        3,
    ),
    "yaml-top-level-list": ("inv.yaml", "- web\n- db\n", "invalid structure", 1),
    "yaml-host-vars-not-mapping": (
        "hosts.yml",
        "web:\n  hosts:\n    w1: just-a-string\n",
        "expected dictionary",
        3,
    ),
    "yaml-numeric-host": ("hosts.yml", "web:\n  hosts:\n    42:\n", "must be a string", 3),
    "yaml-bad-range": ("hosts.yml", "web:\n  hosts:\n    w[1:]:\n", "Invalid host range", 3),
    "extensionless-bad-yaml": ("production", "all:\n  hosts:\n    h1:\n   bad: x\n", "YAML syntax error", 4),
}


@pytest.fixture(scope="module")
def error_dirs(tmp_path_factory, oracle):
    """Write every malformed inventory and start Ansible on each (it must fail on all of them)."""
    root = tmp_path_factory.mktemp("inventory-errors")
    out = {}
    for name, (filename, content, _msg, _line) in ERRORS.items():
        d = root / name
        d.mkdir()
        (d / filename).write_text(content)
        argv = ["ansible-inventory", "--list", "-i", filename]
        env = {"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True"}
        out[name] = (d, oracle.submit(argv, d, env))
    return out


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_malformed_inventory(name, error_dirs, in_dir):
    filename, _content, message, line = ERRORS[name]
    directory, future = error_dirs[name]
    in_dir(directory)
    with pytest.raises(InventoryError) as info:
        load_inventory(filename)
    err = info.value
    assert message in err.message
    assert err.location is not None and err.location.file == filename
    if line is not None:
        assert err.location.line == line, str(err)
    else:
        assert err.location.line is not None
    assert err.hint, "every inventory error must say what to do"
    assert str(err).startswith(f"{filename}:")

    proc = future.result()
    assert proc.returncode != 0, f"ansible-inventory accepted {name}:\n{proc.stdout}"
    assert "parse" in proc.stderr.lower()


def test_group_vars_file_that_is_not_a_mapping(tmp_path, oracle, in_dir):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts").write_text("[web]\nw1\n")
    (tmp_path / "group_vars" / "web.yml").write_text("- a\n- b\n")
    proc = oracle.inventory_list(tmp_path, ["hosts"]).result()
    assert proc.returncode != 0
    in_dir(tmp_path)
    with pytest.raises(InventoryError, match="expected dicts") as info:
        load_inventory("hosts")
    assert info.value.location.file == "group_vars/web.yml" and info.value.hint


def test_group_vars_yaml_syntax_error(tmp_path, in_dir):
    (tmp_path / "group_vars").mkdir()
    (tmp_path / "hosts").write_text("[web]\nw1\n")
    (tmp_path / "group_vars" / "all.yml").write_text("a: 1\nb: [\n")
    in_dir(tmp_path)
    with pytest.raises(InventoryError, match="YAML syntax error") as info:
        load_inventory("hosts")
    assert info.value.location.file == "group_vars/all.yml"
    assert info.value.location.line is not None


def test_missing_source(tmp_path, in_dir):
    in_dir(tmp_path)
    with pytest.raises(InventoryError, match="does not exist") as info:
        load_inventory("nope/hosts")
    assert info.value.hint


def test_plugin_config_is_refused(tmp_path, in_dir):
    (tmp_path / "aws_ec2.yml").write_text("plugin: amazon.aws.aws_ec2\nregions: [eu-west-1]\n")
    in_dir(tmp_path)
    with pytest.raises(InventoryError, match="Plugin configuration") as info:
        load_inventory("aws_ec2.yml")
    assert info.value.location.line == 1 and info.value.hint
