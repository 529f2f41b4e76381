"""Random inventories for the oracle tests: YAML trees, odd INI files and inventory directories.

Every generator takes a `random.Random` (fixed seed in the tests) and a directory, writes files there
and returns the list of ``-i`` arguments to give both ansible-inventory and runbook. The content is
built as text so that YAML tags (``!unsafe``), unquoted scalars that look like numbers or booleans, and
INI Python literals reach both readers exactly as a person would write them.
"""

from __future__ import annotations

import random
from pathlib import Path

GROUPS = ["web", "db", "app", "lb", "prod", "stage", "eu", "us", "mon", "edge-1", "k8s_nodes", "ungrouped"]
HOSTS = [
    "h1",
    "h2",
    "h3",
    "web01.example.com",
    "db1",
    "10.0.0.5",
    "localhost",
    "fe80::1",
    "node-a",
    "web[01:04]",
    "db[a:c]",
    "node[1:7:3]",
    "10.1.0.[1:3]",
    "rack[1:2]-u[a:b]",
    "h2:2222",
    "[2001:db8::9]:2200",
    "host.with.dots",
    "UPPER",
    "x_y",
]
VAR_NAMES = ["port", "role", "enabled", "tags", "cfg", "empty", "ansible_host", "ansible_port", "mode", "ver"]

# an inline vault value (the tests' vault password is never needed: --list prints the ciphertext)
_VAULT = (
    '!vault "$ANSIBLE_VAULT;1.1;AES256\\n'
    "61663332373231313136393231386330343562623739303232313366316234316131343031613839\\n"
    "6231333364656562653931313633386434346434303933650a353431373233646666643934656430\\n"
    "37626262656133653562613831616463393136383335306233343461663439656332343030333832\\n"
    '3636646133383332370a326235393934633462366464333266396239383265303133343731613764\\n6363\\n"'
)
YAML_VALUES = [
    _VAULT,
    "8080",
    "'8080'",
    "0x1F",
    "0o17",
    "017",
    "1e3",
    "1.5",
    ".inf",
    "-0",
    "+12",
    "1_000",
    "true",
    "True",
    "yes",
    "no",
    "on",
    "off",
    "y",
    "n",
    "~",
    "null",
    "",
    "'yes'",
    '"no"',
    "[1, two, 3.0]",
    "{a: 1, b: [x, y]}",
    "[]",
    "{}",
    "2024-01-02",
    "2024-01-02 10:00:00",
    '!unsafe \'{{ lookup("pipe", "id") }}\'',
    "!unsafe [a, '{{ b }}']",
    "'{{ templated }}'",
    '"quoted \\"inner\\" text"',
    "plain text with spaces",
    "'0022'",
    "0022",
    "12:30",
    "1:2:3",
    "a - b",
    "'multi: colon'",
    '"\\u00e9t\\u00e9"',
    "0b101",
    "0.",
    "1e",
    "Null",
    "NULL",
    "FALSE",
]
INI_VALUES = [
    "8080",
    "'8080'",
    "0x1F",
    "1e3",
    "0022",
    "True",
    "true",
    "None",
    "none",
    "[1,2]",
    "{'a':1}",
    "(1, 2)",
    "{1, 2}",
    "'quoted'",
    '"double quoted"',
    "b'bytes'",
    "1+2j",
    "...",
    "-5",
    "1_000",
    "0o17",
    "0b11",
    "plain",
    "with=equals",
    "'a b'",
    '"it\'s"',
    "\\'x",
    "{{ jinja }}",
    "yes",
    "0.5",
    "'{{ x }}'",
    "u'uni'",
]


def _yaml_value(rng: random.Random) -> str:
    return rng.choice(YAML_VALUES)


def _yaml_vars(rng: random.Random, indent: str, count: int) -> list[str]:
    return [f"{indent}{rng.choice(VAR_NAMES)}: {_yaml_value(rng)}".rstrip() for _ in range(count)]


def _yaml_group(rng: random.Random, name: str, depth: int, indent: str, used: list[str]) -> list[str]:
    lines = [f"{indent}{name}:"]
    inner = indent + "  "
    roll = rng.random()
    if roll < 0.1:  # a group with a null body
        return lines
    sections = rng.sample(["hosts", "vars", "children"], rng.randint(1, 3))
    for section in sections:
        if section == "hosts":
            if rng.random() < 0.1:
                lines.append(f"{inner}hosts:")
                continue
            lines.append(f"{inner}hosts:")
            for host in rng.sample(HOSTS, rng.randint(1, 4)):
                key = f"'{host}'" if host.startswith("[") else host
                if rng.random() < 0.4:
                    lines.append(f"{inner}  {key}:")
                else:
                    lines.append(f"{inner}  {key}:")
                    lines += _yaml_vars(rng, inner + "    ", rng.randint(1, 3))
        elif section == "vars":
            lines.append(f"{inner}vars:")
            if rng.random() < 0.15:
                lines.append(f"{inner}  ansible_group_priority: {rng.choice([1, 2, 5, 10])}")
            lines += _yaml_vars(rng, inner + "  ", rng.randint(1, 3))
        elif depth < 4:
            lines.append(f"{inner}children:")
            for child in rng.sample(GROUPS, rng.randint(1, 3)):
                if child == name or child in used:  # keep the graph acyclic
                    continue
                lines += _yaml_group(rng, child, depth + 1, inner + "  ", [*used, name])
    return lines


def yaml_inventory(rng: random.Random, directory: Path) -> list[str]:
    """A YAML inventory of nested groups (several levels), repeated hosts and groups, typed values."""
    lines: list[str] = []
    tops = rng.sample(["all", *GROUPS], rng.randint(1, 4))
    for top in tops:
        lines += _yaml_group(rng, top, 0, "", [] if top != "all" else ["all"])
    name = rng.choice(["hosts.yml", "inventory.yaml", "inv.json.yml", "hosts"])
    (directory / name).write_text("\n".join(lines) + "\n")
    _vars_files(rng, directory)
    return [name]


def _vars_files(rng: random.Random, directory: Path) -> None:
    """group_vars/ and host_vars/ beside the inventory: files with every extension, directories of files."""
    for sub, names in (
        ("group_vars", ["all", *GROUPS, "nosuchgroup"]),
        ("host_vars", [*HOSTS[:9], "web01", "ghost"]),
    ):
        if rng.random() < 0.3:
            continue
        base = directory / sub
        base.mkdir(exist_ok=True)
        for entity in rng.sample(names, rng.randint(1, 4)):
            if ":" in entity or "[" in entity or list(base.glob(entity + "*")):
                continue
            kind = rng.choice(["yml", "yaml", "json", "", "dir"])
            body = "\n".join(_yaml_vars(rng, "", rng.randint(1, 3))) + "\n"
            if kind == "dir":
                d = base / entity
                d.mkdir(exist_ok=True)
                for fname in rng.sample(
                    ["10-a.yml", "2-b.yaml", "main", "z.json", "notes.txt", "x.yml~", ".hidden.yml"], 3
                ):
                    text = body if not fname.endswith(".json") else f'{{"from_json": "{fname}", "port": 7}}\n'
                    (d / fname).write_text(
                        text if rng.random() < 0.8 else "\n".join(_yaml_vars(rng, "", 2)) + "\n"
                    )
                if rng.random() < 0.3:
                    (d / "nested").mkdir(exist_ok=True)
                    (d / "nested" / "deep.yml").write_text("deep: true\nport: 9\n")
            elif kind == "json":
                (base / f"{entity}.json").write_text('{"jvar": [1, 2], "port": "9090", "role": null}\n')
            else:
                (base / (entity + (f".{kind}" if kind else ""))).write_text(body)


def _ini_host_line(rng: random.Random) -> str:
    host = rng.choice([*HOSTS, "2001:db8::1", "h1:22", "web[a:c].lan", "db-[01:03]", "'quoted host'"])
    if rng.random() < 0.005:
        host = "[::1]"  # a line that looks like a section header: Ansible refuses it
    parts = [host]
    for _ in range(rng.randint(0, 3)):  # a space inside a value needs quotes on a host line
        value = rng.choice([v for v in INI_VALUES if " " not in v or v[0] in "'\""])
        parts.append(f"{rng.choice(VAR_NAMES)}={value}")
    line = " ".join(parts)
    if rng.random() < 0.2:
        line += rng.choice(["  # trailing comment", " #no-space", "\t# tab comment"])
    elif rng.random() < 0.01:
        line += " ; not a comment on a host line"
    return line


def ini_inventory(rng: random.Random, directory: Path) -> list[str]:
    """An INI file with :vars before groups, :children of later groups, literals, ports, IPv6, comments."""
    lines: list[str] = []
    if rng.random() < 0.5:
        lines += [_ini_host_line(rng) for _ in range(rng.randint(1, 2))]  # ungrouped hosts first
    defined: list[str] = []
    for _ in range(rng.randint(2, 6)):
        group = rng.choice(["all", *GROUPS])
        kind = rng.choice(["hosts", "hosts", "vars", "children"])
        if kind == "hosts" and group != "all":
            lines.append(f"[{group}]" + rng.choice(["", "  # group comment"]))
            lines += [_ini_host_line(rng) for _ in range(rng.randint(0, 4))]
            defined.append(group)
        elif kind == "vars":
            lines.append(f"[{group}:vars]")
            for _ in range(rng.randint(1, 3)):
                sep = rng.choice(["=", " = ", "= ", " ="])
                lines.append(f"{rng.choice(VAR_NAMES)}{sep}{rng.choice(INI_VALUES)}")
            if group not in defined and group != "all":  # a :vars section needs the group defined somewhere
                lines.append(f"[{group}]")
                defined.append(group)
        else:
            lines.append(f"[{group}:children]")
            kids = rng.sample([g for g in GROUPS if g != group], rng.randint(1, 3))
            lines += kids
            for kid in kids:
                if kid not in defined and rng.random() < 0.9:
                    lines.append(f"[{kid}]")
                    lines.append(_ini_host_line(rng))
                    defined.append(kid)
        if rng.random() < 0.2:
            lines.append(rng.choice(["; a comment line", "# another", "", "   "]))
    name = rng.choice(["hosts", "hosts.ini", "inventory"])
    (directory / name).write_text("\n".join(lines) + "\n")
    _vars_files(rng, directory)
    return [name]


def dir_inventory(rng: random.Random, directory: Path) -> list[str]:
    """An inventory directory: INI and YAML sources side by side plus files Ansible ignores."""
    inv = directory / "inventory"
    inv.mkdir()
    for i in range(rng.randint(1, 3)):
        sub = inv / f"part{i}"
        sub.mkdir()
        maker = rng.choice([ini_inventory, yaml_inventory])
        (produced,) = maker(rng, sub)
        if maker is yaml_inventory:  # now and then a YAML file named like an INI one: Ansible refuses it
            names = [f"{i:02d}-hosts.yml", f"y{i}.yaml", f"{i}.json", f"{i}noext"] + [f"z{i}.ini"] * (
                rng.random() < 0.1
            )
        else:
            names = [f"{i:02d}-hosts", f"z{i}.ini", f"{i}inventory", f"{i}.cfg.ini"]
        target = inv / rng.choice(names)
        (sub / produced).rename(target)
        if (sub / "group_vars").is_dir() and not (inv / "group_vars").exists():
            (sub / "group_vars").rename(inv / "group_vars")
        if (sub / "host_vars").is_dir() and rng.random() < 0.5 and not (directory / "host_vars").exists():
            (sub / "host_vars").rename(directory / "host_vars")  # beside the directory: not read
        for leftover in sorted(sub.rglob("*"), reverse=True):
            leftover.rmdir() if leftover.is_dir() else leftover.unlink()
        sub.rmdir()
    for ignored in rng.sample(
        ["site.retry", "hosts.orig", "hosts~", "README.md", "notes.txt", ".hidden", "x.cfg", "backup.bak"], 3
    ):
        (inv / ignored).write_text("[broken\nthis is not an inventory: [\n")
    if rng.random() < 0.5:  # the playbook directory's group_vars/ and host_vars/ (the cwd's)
        _vars_files(rng, directory)
    sources = ["inventory"]
    if rng.random() < 0.3:
        (directory / "extra.yml").write_text("extra:\n  hosts:\n    h1:\n      from_extra: 1\n    newhost:\n")
        sources.append("extra.yml")
    if rng.random() < 0.2:
        sources.append("h1,h9:2022,")
    return sources
