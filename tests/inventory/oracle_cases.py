"""Hand-written odd inventories for the oracle tests: {case name: ({relative path: content}, [-i args])}.

A path ending in "/" is an empty directory; content "-> TARGET" makes a symbolic link; content
starting with "+x " makes an executable file (of the rest). The current directory of both Ansible and runbook is the
case directory, so a group_vars/ or host_vars/ at its top is also the "playbook directory" one.
"""

from __future__ import annotations

import os
from pathlib import Path

Case = tuple[dict[str, str], list[str]]

INI: dict[str, Case] = {
    "vars-before-group": ({"hosts": "[web:vars]\nport=80\n[web]\nw1\n"}, ["hosts"]),
    "vars-before-children-def": ({"hosts": "[top:vars]\nx=1\n[top:children]\nweb\n[web]\nw1\n"}, ["hosts"]),
    "children-before-def": (
        {"hosts": "[top:children]\nmid\n[mid:children]\nleaf\n[leaf]\nh\n[mid]\nm\n"},
        ["hosts"],
    ),
    "children-undefined": ({"hosts": "[top:children]\nghost\n[top]\nh\n"}, ["hosts"]),
    "ports": (
        {
            "hosts": "[web]\nh1:2222\nh2:22 ansible_port=2200\n10.0.0.1:2022\n[::1]:2223\nh3 ansible_port=0x10\n"
        },
        ["hosts"],
    ),
    "ipv6": (
        {
            "hosts": "[v6]\nfe80::1%eth0\n2001:db8::1 ansible_host=2001:db8::1\n::1\n[2001:db8::2]:22\n"
            "2001:db8::[a:c]\n"
        },
        ["hosts"],
    ),
    "inline-comments": (
        {
            "hosts": "[web] # the web tier\nw1 # first\nw3 b='x # y' c=d#e # c\n"
            "; whole line\n# whole line\n  # indented\n[web:vars]\nc=1 # vars comment?\n"
            "d=2 ; semi\ne=x#y\nf='a # b'\n[web:children] # kids\n"
        },
        ["hosts"],
    ),
    "semicolon-after-host": ({"hosts": "[web]\nw2 a=1 ; not a comment\n"}, ["hosts"]),
    "bom": ({"hosts": "\ufeff[web]\nw1\n"}, ["hosts"]),
    "bom-ungrouped-host": ({"hosts": "\ufeffh0\n[web]\nw1\n"}, ["hosts"]),
    "only-comments": ({"hosts": "# nothing here\n; nor here\n"}, ["hosts"]),
    "empty-ini": ({"hosts.ini": ""}, ["hosts.ini"]),
    "empty-noext": ({"hosts": ""}, ["hosts"]),
    "string-concat-literal": (
        {
            "hosts": "[g]\nh\n[g:vars]\na=\"x\" \"y\"\nb=1,2\nc='''m'''\nd=\"\\u00e9\"\n"
            "e=1 if 1 else 2\nf=-\ng=(\nh=[1,\n"
        },
        ["hosts"],
    ),
    "var-names-odd": ({"hosts": "[g]\nh my-var=1 1x=2 ok_var=3\n[g:vars]\nmy key = 1\nx.y=2\n"}, ["hosts"]),
    "dup-var-on-line": ({"hosts": "[g]\nh p=1 p=2\n[g:vars]\nq=1\nq=2\n"}, ["hosts"]),
    "child-is-host": ({"hosts": "[web]\nh1\n[db:children]\nh1\n[db]\n"}, ["hosts"]),
    "child-all": ({"hosts": "[web:children]\nall\n[web]\nh\n"}, ["hosts"]),
    "padded-step": ({"hosts": "[g]\nn[001:100:25]\nm[0:3:2]\n"}, ["hosts"]),
    "port-out-of-range": ({"hosts": "[g]\nh:99999\nk:0\n"}, ["hosts"]),
    "legacy-vars": (
        {"hosts": "[g]\nh ansible_ssh_host=1.2.3.4 ansible_ssh_port=2222 ansible_ssh_user=u\n"},
        ["hosts"],
    ),
    "localhost-local": ({"hosts": "localhost ansible_connection=local\n[all:vars]\nx=1\n"}, ["hosts"]),
    "ungrouped-vars-file": (
        {
            "hosts": "h0\n[web]\nw\n",
            "group_vars/ungrouped.yml": "uv: 1\n",
            "group_vars/all/a.yml": "av: 1\n",
            "group_vars/all/b.yaml": "av: 2\n",
        },
        ["hosts"],
    ),
    "priority-in-group-vars-file": (
        {
            "hosts": "[a]\nh\n[b]\nh\n",
            "group_vars/a.yml": "ansible_group_priority: 10\nv: a\n",
            "group_vars/b.yml": "v: b\n",
        },
        ["hosts"],
    ),
    "quotes-escapes": (
        {
            "hosts": "[web]\nw1 a='x y' b=\"p q\" c=x\\ y d=it\\'s e='' f=\"\" g=a=b h='{\"k\": 1}'\n"
            "[web:vars]\nq1 = 'spaced value'\nq2=\"double\"\nq3 = a = b\nq4=  lead\nq5='x' y\n"
            "q6=\\n\nq7=C:\\\\path\n"
        },
        ["hosts"],
    ),
    "python-literals": (
        {
            "hosts": "[g]\nh v1=True v2=0x1F v3=1e3 v4=[1,2] v5={'a':1} v6=None v7=0022 v8=0o22 v9=-0 "
            "v10=1_0 v11=(1,) v12='s' v13=u'x' v14=b'y' v15=1.0e-3 v16=inf v17=nan v18=...\n"
            "[g:vars]\nw1=True\nw2=0x1F\nw3=[1, 'a', None]\nw4={'k': [1, {'n': False}]}\n"
            "w5=0022\nw6=12:30\nw7=1e3\nw8=yes\nw9=-1.5\nw10=set()\nw11={1, 2}\n"
        },
        ["hosts"],
    ),
    "duplicate-hosts": ({"hosts": "h1 a=1\n[web]\nh1 a=2 b=1\nh1 a=3\n[db]\nh1 c=1\n[web]\nh2\n"}, ["hosts"]),
    "empty-groups": (
        {"hosts": "[empty]\n[empty2:children]\n[empty3:vars]\n[empty3]\n[full]\nh\n"},
        ["hosts"],
    ),
    "all-vars": (
        {"hosts": "[all:vars]\nx=1\ny=2\n[web]\nw1 y=3\n[web:vars]\nx=4\n[all]\nh_in_all\n"},
        ["hosts"],
    ),
    "all-children": ({"hosts": "[all:children]\nweb\n[web]\nw\n[db]\nd\n"}, ["hosts"]),
    "ungrouped-explicit": ({"hosts": "u0\n[ungrouped]\nu1\n[ungrouped:vars]\nz=1\n[web]\nu1\n"}, ["hosts"]),
    "letter-ranges": (
        {"hosts": "[web]\nweb-[a:e].lan\nn[1:3]-[x:y]\n[db]\ndb[01:10:3]\ndb[A:C]\n"},
        ["hosts"],
    ),
    "range-in-group-header": ({"hosts": "[web[1:2]]\nh\n"}, ["hosts"]),
    "priority-none": ({"hosts": "[a]\nh\n[a:vars]\nansible_group_priority=None\n"}, ["hosts"]),
    "priority-odd-values": (
        {
            "hosts": "[a]\nh\n[b]\nh\n[c]\nh\n[a:vars]\nansible_group_priority=1.9\nv=a\n"
            "[b:vars]\nansible_group_priority='3'\nv=b\n[c:vars]\nansible_group_priority=True\n"
            "v=c\n"
        },
        ["hosts"],
    ),
    "priority": (
        {"hosts": "[a]\nh\n[b]\nh\n[a:vars]\nv=a\nansible_group_priority=5\n[b:vars]\nv=b\n"},
        ["hosts"],
    ),
    "host-and-group-same-name": ({"hosts": "[web]\nweb\n[web:vars]\nx=1\n"}, ["hosts"]),
    "localhost-variants": ({"hosts": "localhost\n127.0.0.1\n[g]\n::1\n"}, ["hosts"]),
    "tab-separated": ({"hosts": "[g]\nh1\ta=1\tb=2\n"}, ["hosts"]),
    "crlf": ({"hosts": "[g]\r\nh1 a=1\r\n[g:vars]\r\nb=2\r\n"}, ["hosts"]),
    "unicode": ({"hosts": "[grüppe]\nhöst a=ü\n[grüppe:vars]\nb='ß'\n"}, ["hosts"]),
    "vars-no-value": ({"hosts": "[g]\nh\n[g:vars]\nempty=\nspaced = \n"}, ["hosts"]),
    "host-var-empty": ({"hosts": '[g]\nh a= b=""\n'}, ["hosts"]),
    "section-comment-semicolon": ({"hosts": "[g] ; comment\nh\n"}, ["hosts"]),
    "children-with-vars-after": (
        {"hosts": "[p:children]\nc\n[c]\nh\n[p:vars]\nx=1\n[c:vars]\nx=2\n"},
        ["hosts"],
    ),
    "host-list-odd": ({}, ["a,b:2022,[::1]:23,c[1:2],,"]),
    "host-list-single": ({}, ["onlyhost,"]),
}

YAML: dict[str, Case] = {
    "nulls": (
        {
            "hosts.yml": "all:\n  hosts:\n  children:\n    web:\n    db:\n      hosts:\n        d1:\n"
            "      vars:\n"
        },
        ["hosts.yml"],
    ),
    "hosts-as-string": ({"hosts.yml": "web:\n  hosts: w1\n  children: db\n  vars: v\n"}, ["hosts.yml"]),
    "ungrouped-with-children": (
        {
            "hosts.yml": "ungrouped:\n  vars:\n    uv: 1\n  hosts:\n    x:\n  children:\n"
            "    us:\n      hosts:\n        x:\n        y:\n"
        },
        ["hosts.yml"],
    ),
    "ungrouped-under-parent": (
        {
            "hosts.yml": "prod:\n  hosts:\n    x:\n  vars:\n    pv: 1\n  children:\n"
            "    ungrouped:\n      hosts:\n        x:\n        y:\n"
        },
        ["hosts.yml"],
    ),
    "ranges": (
        {
            "hosts.yml": "g:\n  hosts:\n    web[01:10:2]:\n    node-[a:f]:\n      x: 1\n    'h[1:2]:2222':\n"
            "    '10.0.[0:1].[1:2]':\n"
        },
        ["hosts.yml"],
    ),
    "conflicting-vars": (
        {
            "hosts.yml": "all:\n  vars:\n    v: all\n  children:\n    a:\n      vars: {v: a, w: a}\n"
            "      hosts: {h: {v: h1}}\n    b:\n      vars: {v: b}\n      hosts:\n"
            "        h: {w: h2}\n      children:\n        c:\n          vars: {v: c}\n"
            "          hosts: {h: null}\n"
        },
        ["hosts.yml"],
    ),
    "unsafe-and-types": (
        {
            "hosts.yml": "g:\n  hosts:\n    h:\n      u: !unsafe '{{ x }}'\n      ul: !unsafe [a, 1, {k: '{{y}}'}]\n"
            "      d: 2024-01-02\n      t: 2024-01-02T03:04:05Z\n      b: yes\n"
            "      o: 0o17\n      x: 0x1F\n      s: '0022'\n      n: ~\n      e: ''\n"
            "      f: 1.0\n      big: 123456789012345678901234567890\n"
            "      k: {1: a, true: b, null: c, 1.5: d}\n"
        },
        ["hosts.yml"],
    ),
    "json-inventory": (
        {
            "inv.json": '{"web": {"hosts": {"w1": {"a": 1}}, "vars": {"b": [1, {"c": null}]}},'
            ' "all": {"vars": {"z": {"__ansible_unsafe": "{{ q }}"}}}}'
        },
        ["inv.json"],
    ),
    "group-is-list": ({"hosts.yml": "web:\n  - w1\n  - w2\ndb:\n  hosts:\n    d1:\n"}, ["hosts.yml"]),
    "group-is-scalar": ({"hosts.yml": "web: w1\ndb:\n  hosts:\n    d1:\n"}, ["hosts.yml"]),
    "unknown-key": (
        {"hosts.yml": "web:\n  host:\n    w1:\n  hosts:\n    w2:\n  varz: {a: 1}\n"},
        ["hosts.yml"],
    ),
    "vars-is-list": ({"hosts.yml": "web:\n  vars:\n    - a: 1\n"}, ["hosts.yml"]),
    "children-null-and-repeat": (
        {
            "hosts.yml": "a:\n  children:\n    b:\n    c:\n      hosts: {h1: null}\nb:\n  hosts:\n"
            "    h2:\n  children:\n    c:\n"
        },
        ["hosts.yml"],
    ),
    "all-hosts-direct": (
        {"hosts.yml": "all:\n  hosts:\n    h1:\n    h2:\n  children:\n    g:\n      hosts: {h2: null}\n"},
        ["hosts.yml"],
    ),
    "host-vars-null": ({"hosts.yml": "g:\n  hosts:\n    h1: ~\n    h2: {}\n"}, ["hosts.yml"]),
    "anchors-merge": (
        {
            "hosts.yml": "g:\n  vars: &base\n    a: 1\n    b: 2\n  hosts:\n    h1:\n      <<: *base\n"
            "      b: 3\n"
        },
        ["hosts.yml"],
    ),
    "duplicate-keys": ({"hosts.yml": "g:\n  hosts:\n    h1: {a: 1}\n  hosts:\n    h2:\n"}, ["hosts.yml"]),
    "numeric-group": ({"hosts.yml": "'123':\n  hosts:\n    h:\n"}, ["hosts.yml"]),
    "empty-file": ({"hosts.yml": "# nothing\n"}, ["hosts.yml"]),
    "bad-yaml": ({"hosts.yml": "all:\n  hosts:\n    h1: [\n"}, ["hosts.yml"]),
    "tab-indent": ({"hosts.yml": "all:\n\thosts:\n"}, ["hosts.yml"]),
    "bad-range": ({"hosts.yml": "g:\n  hosts:\n    web[3:1]:\n"}, ["hosts.yml"]),
    "bad-range-letters-digits": ({"hosts.yml": "g:\n  hosts:\n    web[a:3]:\n"}, ["hosts.yml"]),
    "yaml-no-ext-as-ini": ({"hosts": "[g]\nh\n"}, ["hosts"]),
    "priority-yaml": (
        {"hosts.yml": "a:\n  vars: {ansible_group_priority: ~, v: a}\n  hosts: {h: null}\n"},
        ["hosts.yml"],
    ),
    "priority-yaml-negative": (
        {
            "hosts.yml": "a:\n  vars: {ansible_group_priority: -5, v: a}\n  hosts: {h: null}\n"
            "b:\n  vars: {v: b}\n  hosts: {h: null}\n"
        },
        ["hosts.yml"],
    ),
    "doc-markers": ({"hosts.yml": "---\ng:\n  hosts:\n    h:\n...\n"}, ["hosts.yml"]),
    "two-documents": (
        {"hosts.yml": "---\ng:\n  hosts: {h: null}\n---\nk:\n  hosts: {k: null}\n"},
        ["hosts.yml"],
    ),
    "all-null": ({"hosts.yml": "all: ~\n"}, ["hosts.yml"]),
    "empty-mapping": ({"hosts.yml": "{}\n"}, ["hosts.yml"]),
    "bom-yaml": ({"hosts.yml": "\ufeffg:\n  hosts:\n    h:\n"}, ["hosts.yml"]),
    "list-output-fed-back": (
        {
            "inv.json": '{"_meta": {"hostvars": {"h": {"a": 1}}}, "all": {"children": ["g"]},'
            ' "g": {"hosts": ["h"]}}'
        },
        ["inv.json"],
    ),
    "meta-only": ({"inv.yml": "_meta:\n  hostvars:\n    h: {a: 1}\ng:\n  hosts:\n    h:\n"}, ["inv.yml"]),
    "group-under-two-parents": (
        {
            "hosts.yml": "p1:\n  children:\n    c:\n      hosts: {a: null}\n      vars: {v: 1}\n"
            "p2:\n  children:\n    c:\n      hosts: {b: null}\n      vars: {v: 2}\n"
        },
        ["hosts.yml"],
    ),
    "ipv6-keys": (
        {"hosts.yml": "g:\n  hosts:\n    '2001:db8::1':\n    fe80::2:\n    '[::1]:2222':\n"},
        ["hosts.yml"],
    ),
    "host-with-port-vars": (
        {"hosts.yml": "g:\n  hosts:\n    'h:22':\n      ansible_port: 23\n    'k:24':\n"},
        ["hosts.yml"],
    ),
    "children-hosts-string-forms": (
        {"hosts.yml": "a:\n  children:\n    b:\n      hosts: 'h[1:2]'\n"},
        ["hosts.yml"],
    ),
    "plugin-key-empty": ({"hosts.yml": "plugin: ''\ng:\n  hosts: {h: null}\n"}, ["hosts.yml"]),
    "deep-nesting": (
        {
            "hosts.yml": "l0:\n  children:\n    l1:\n      children:\n        l2:\n          children:\n"
            "            l3:\n              children:\n                l4:\n"
            "                  hosts: {deep: {v: 4}}\n                  vars: {x: 4}\n"
            "              vars: {x: 3, y: 3}\n          vars: {x: 2, z: 2}\n"
            "  vars: {x: 0, w: 0}\n"
        },
        ["hosts.yml"],
    ),
}

_GV = "group_vars/"
_HV = "host_vars/"
DIRS: dict[str, Case] = {
    "vars-file-kinds": (
        {
            "inv/hosts": "[web]\nw1\nw2\n[db]\nd1\n",
            "inv/group_vars/all.yml": "src: all.yml\nk_all: 1\n",
            "inv/group_vars/web.yaml": "src: web.yaml\n",
            "inv/group_vars/db.json": '{"src": "db.json", "j": [1, 2]}',
            "inv/group_vars/db": "src: db-noext\n",
            "inv/host_vars/w1/10-first.yml": "order: first\nn: 1\n",
            "inv/host_vars/w1/2-second.yml": "order: second\n",
            "inv/host_vars/w1/main": "noext: true\n",
            "inv/host_vars/w1/z.json": '{"order": "json"}',
            "inv/host_vars/w1/notes.txt": "order: txt\n",
            "inv/host_vars/w1/x.yml~": "order: backup\n",
            "inv/host_vars/w1/.hidden.yml": "order: hidden\n",
            "inv/host_vars/w1/sub/deep.yml": "deep: 1\norder: deep\n",
            "inv/host_vars/w2.yml": "a: yml\n",
            "inv/host_vars/w2.yaml": "a: yaml\n",
            "inv/host_vars/ghost.yml": "never: used\n",
            "inv/group_vars/nosuchgroup.yml": "never: used\n",
        },
        ["inv/hosts"],
    ),
    "mixed-dir": (
        {
            "inv/01-hosts.ini": "[web]\nw1 from=ini\n",
            "inv/02-more.yml": "web:\n  hosts:\n    w2:\n      from: yaml\ndb:\n  hosts:\n    d1:\n",
            "inv/03-noext": "[db]\nd2\n",
            "inv/site.retry": "not an inventory [\n",
            "inv/hosts.orig": "[broken\n",
            "inv/hosts~": "[broken\n",
            "inv/README.md": "# docs\n",
            "inv/x.cfg": "[defaults]\nfoo=bar\n",
            "inv/.hidden": "[broken\n",
            "inv/group_vars/web.yml": "gv: web\n",
            "inv/sub/more.yaml": "sub:\n  hosts:\n    s1:\n",
            "inv/sub/group_vars/sub.yml": "subgv: 1\n",
        },
        ["inv"],
    ),
    "several-sources": (
        {
            "a/hosts": "[web]\nw1 x=a\n",
            "a/group_vars/web.yml": "gv: a\nonly_a: 1\n",
            "b/hosts.yml": "web:\n  hosts:\n    w1:\n      x: b\n    w2:\n",
            "b/group_vars/web.yml": "gv: b\n",
            "b/host_vars/w1.yml": "hv: b\n",
        },
        ["a/hosts", "b/hosts.yml", "w3,w1,"],
    ),
    "playbook-dir-vars": (
        {
            "inv/hosts": "[web]\nw1\n",
            "inv/group_vars/web.yml": "gv: inventory\ninv_only: 1\n",
            "inv/group_vars/all.yml": "av: inventory\n",
            "group_vars/web.yml": "gv: playbook\n",
            "group_vars/all.yml": "av: playbook\n",
            "host_vars/w1.yml": "hv: playbook\n",
            "inv/host_vars/w1.yml": "hv: inventory\n",
        },
        ["inv/hosts"],
    ),
    "host-vars-beside-single-file": (
        {
            "hosts": "[web]\nw1\n",
            "host_vars/w1": "hv: noext\n",
            "group_vars/web/a.yml": "x: 1\n",
            "group_vars/web/b.yml": "x: 2\n",
        },
        ["hosts"],
    ),
    "group-vars-not-dir": ({"hosts": "[web]\nw1\n", "group_vars": "not a directory\n"}, ["hosts"]),
    "group-vars-empty-file": (
        {"hosts": "[web]\nw1\n", "group_vars/web.yml": "", "group_vars/all.yml": "---\n"},
        ["hosts"],
    ),
    "group-vars-list": ({"hosts": "[web]\nw1\n", "group_vars/web.yml": "- a\n"}, ["hosts"]),
    "group-vars-bad-yaml": ({"hosts": "[web]\nw1\n", "group_vars/web.yml": "a: [\n"}, ["hosts"]),
    "group-vars-for-empty-group": ({"hosts": "[web]\n[db]\nd\n", "group_vars/web.yml": "a: [\n"}, ["hosts"]),
    "empty-dir": ({"inv/": ""}, ["inv"]),
    "dir-only-ignored": ({"inv/a.retry": "x\n", "inv/b.md": "y\n"}, ["inv"]),
    "dir-with-broken-file": ({"inv/a": "[web]\nw\n", "inv/b.yml": "a: [\n"}, ["inv"]),
    "source-twice": ({"hosts": "[web]\nw1\n"}, ["hosts", "hosts"]),
    "symlinked-file": (
        {
            "real/hosts": "[web]\nw1\n",
            "real/group_vars/web.yml": "where: real\n",
            "link/group_vars/web.yml": "where: link\n",
            "link/hosts": "-> ../real/hosts",
        },
        ["link/hosts"],
    ),
    "trailing-slash-dir": ({"inv/hosts": "[web]\nw1\n", "inv/group_vars/web.yml": "gv: 1\n"}, ["inv/"]),
    "dotdot-source": ({"a/hosts": "[web]\nw1\n", "b/": ""}, ["b/../a/hosts"]),
    "ipv6-host-vars": ({"hosts": "[g]\n2001:db8::1\n", "host_vars/2001:db8::1.yml": "v6: true\n"}, ["hosts"]),
    "group-vars-nested-dir-with-ext": (
        {
            "hosts": "[web]\nw\n",
            "group_vars/web/sub.d/x.yml": "no: 1\n",
            "group_vars/web/sub/y.yml": "yes_: 1\n",
        },
        ["hosts"],
    ),
    "vars-in-later-file": (
        {"inv/1-hosts": "[web]\nw1\n", "inv/2-vars": "[web:vars]\nx=1\n[db:children]\nweb\n"},
        ["inv"],
    ),
    "vars-in-earlier-file": ({"inv/1-vars": "[web:vars]\nx=1\n", "inv/2-hosts": "[web]\nw1\n"}, ["inv"]),
    "children-across-files": (
        {"inv/1.yml": "top:\n  children:\n    web:\n", "inv/2": "[web]\nw1\n[top:vars]\nt=1\n"},
        ["inv"],
    ),
    "executable-ini": ({"hosts": "+x [web]\nw1\n"}, ["hosts"]),
    "executable-yaml-in-dir": ({"inv/hosts.yml": "+x web:\n  hosts:\n    w1:\n"}, ["inv"]),
    "host-list-and-file": ({"hosts": "[web]\nw1 a=1\n", "host_vars/w9.yml": "z: 1\n"}, ["w9,w1,", "hosts"]),
}


def write_case(directory: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = directory / rel
        if rel.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if text.startswith("-> "):
            os.symlink(text[3:], path)
        elif text.startswith("+x "):
            path.write_text(text[3:])
            path.chmod(0o755)
        else:
            path.write_text(text)
