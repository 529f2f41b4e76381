"""A corpus of malformed runbooks (and the vars files, extra vars and templates they use), each
with where the error must point and what it must say.

A case is refused by every command that reads the runbook (validate, plan, show, exec): exit 2,
``error: FILE:LINE:COL: ...`` naming the right place, never a traceback. ``static=False`` marks a
problem that only exists for a host (an undefined variable, a loop rendering to a number): `show`,
which takes no inventory, does not see it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEP = "steps:\n  - shell: echo hi\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes
    where: str | None  # "LINE:COL" in the runbook (None: the message names another file or no line)
    says: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    extra: tuple[str, ...] = ()
    static: bool = True  # `show` (no inventory, no -e) refuses it too


def rb(body: str) -> str:
    return "hosts: localhost\n" + body


CASES = [
    # ---------------------------------------------------------------- YAML itself
    Case("unclosed-quote", rb('steps:\n  - shell: "echo hi\n'), "4:1", "YAML syntax error"),
    Case("unclosed-bracket", rb("steps:\n  - shell: [echo, hi\n"), "4:1", "expected ',' or ']'"),
    Case("unclosed-brace", rb("steps:\n  - copy: {dest: /tmp/x, content: y\n"), "4:1", "expected ',' or '}'"),
    Case("bad-indentation", rb("steps:\n  - shell: echo hi\n   name: x\n"), "4:4", "YAML syntax error"),
    Case("tab-indentation", rb("steps:\n\t- shell: echo hi\n"), "3:1", "YAML syntax error"),
    Case("empty-file", "", "1:1", "a runbook must be a YAML mapping"),
    Case("only-comments", "# nothing\n# here\n", "1:1", "a runbook must be a YAML mapping"),
    Case("top-level-list", "- a\n- b\n", "1:1", "holds 2 plays"),
    Case("top-level-string", "hello\n", "1:1", "a runbook must be a YAML mapping"),
    Case("top-level-number", "42\n", "1:1", "a runbook must be a YAML mapping"),
    Case("non-utf8", b"hosts: localhost\nsteps:\n  - shell: echo caf\xe9\n", "3:20", "not UTF-8"),
    Case("utf16", "hosts: localhost\n".encode("utf-16"), "1:1", "not UTF-8"),
    Case("nul-byte", "hosts: localhost\n\x00" + STEP, "2:1", "control character U+0000"),
    Case("duplicate-top-key", "hosts: localhost\nhosts: all\n" + STEP, "2:1", "duplicate key 'hosts'"),
    Case(
        "duplicate-step-key",
        rb("steps:\n  - shell: a\n    name: x\n    name: y\n"),
        "5:5",
        "duplicate key 'name'",
    ),
    Case("several-documents", rb(STEP + "---\nhosts: b\n"), "4:1", "several YAML documents"),
    Case("undefined-alias", rb("steps:\n  - *nope\n"), "3:5", "undefined alias"),
    Case("recursive-alias", rb("vars:\n  x: &x [1, *x]\n" + STEP), "3:6", "recursive"),
    Case("merge-of-scalar", rb("steps:\n  - <<: 5\n    shell: echo\n"), "3:9", "for merging"),
    Case(
        "billion-laughs",
        rb("vars:\n" + "".join(f"  {line}\n" for line in LAUGHS.splitlines()) + STEP),
        "8:6",
        "expands to more than 1,000,000 values",
    ),
    Case(
        "deep-nesting",
        rb("vars:\n  x: " + "[" * 3000 + "]" * 3000 + "\n" + STEP),
        "3:104",
        "nested more than",
    ),
    Case(
        "deep-mapping",
        rb("vars:\n  x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n" + STEP),
        "3:398",
        "nested more than",
    ),
    Case("mapping-as-key", rb("? [a, b]\n: x\n" + STEP), "2:3", "a mapping key must be a plain value"),
    # ---------------------------------------------------------------- runbook keys
    Case("unknown-top-key", rb("stepz:\n  - shell: x\n"), "2:1", "did you mean 'steps'?"),
    Case("name-is-a-list", "name: [1]\n" + rb(STEP), "1:1", "name must be a string"),
    Case("hosts-is-a-number", "hosts: 5\n" + STEP, "1:1", "hosts must be an inventory pattern"),
    Case("hosts-is-a-mapping", "hosts: {a: 1}\n" + STEP, "1:1", "hosts must be an inventory pattern"),
    Case("hosts-is-empty", "hosts: ''\n" + STEP, "1:1", "hosts must be an inventory pattern"),
    Case(
        "hosts-matches-nothing",
        "hosts: nosuchgroup\n" + STEP,
        "1:1",
        "no hosts match 'nosuchgroup'",
        static=False,
    ),
    Case("serial-150-percent", rb("serial: '150%'\n" + STEP), "2:1", "more than 100%"),
    Case("serial-zero", rb("serial: 0\n" + STEP), "2:1", "at least 1"),
    Case("serial-negative-in-list", rb("serial: [1, -1]\n" + STEP), "2:13", "at least 1"),
    Case("serial-zero-string", rb("serial: '0%'\n" + STEP), "2:1", "at least 1"),
    Case("serial-word", rb("serial: lots\n" + STEP), "2:1", "a number or a percentage"),
    Case("serial-empty-list", rb("serial: []\n" + STEP), "2:1", "serial is an empty list"),
    Case("rollback-number", rb("rollback: 5\n" + STEP), "2:1", "rollback must be 'auto', 'none' or a list"),
    Case("rollback-mapping", rb("rollback: {shell: x}\n" + STEP), "2:1", "rollback must be"),
    Case("rollback-bad-step", rb("rollback: [5]\n" + STEP), "2:12", "rollback item 1 must be a mapping"),
    Case("rollback-scope", rb("rollback_scope: world\n" + STEP), "2:1", "rollback_scope must be"),
    Case("top-timeout-negative", rb("timeout: -1\n" + STEP), "2:1", "timeout must be greater than 0"),
    Case("forks-zero", rb("forks: 0\n" + STEP), "2:1", "forks must be a positive integer"),
    Case(
        "window-bad-time", rb("window: {start: '25:99', end: '03:00'}\n" + STEP), "2:10", "not a time of day"
    ),
    Case("window-unquoted-time", rb("window: {start: 1:30, end: '03:00'}\n" + STEP), "2:10", "quote it"),
    Case(
        "window-bad-tz",
        rb("window: {start: '01:00', end: '03:00', tz: Mars/Base}\n" + STEP),
        "2:40",
        "unknown time zone",
    ),
    Case(
        "window-bad-day",
        rb("window: {start: '01:00', end: '03:00', days: [funday]}\n" + STEP),
        "2:40",
        "day names",
    ),
    Case(
        "window-unknown-key",
        rb("window: {start: '01:00', end: '03:00', zone: UTC}\n" + STEP),
        "2:40",
        "unknown window key 'zone'",
    ),
    Case("vars-is-a-list", rb("vars: [1, 2]\n" + STEP), "2:1", "vars must be a mapping"),
    Case(
        "vars-bad-name", rb("vars:\n  app-dir: /x\n" + STEP), "3:3", "'app-dir' is not a valid variable name"
    ),
    Case("vars-number-name", rb("vars:\n  1: x\n" + STEP), "3:3", "1 is not a valid variable name"),
    Case("vars-jinja-syntax", rb("vars:\n  a: '{{ b'\n" + STEP), "3:3", "template syntax error"),
    Case("vars-files-missing", rb("vars_files: [missing.yml]\n" + STEP), "2:1", "vars file not found"),
    Case("vars-files-not-a-path", rb("vars_files: [5]\n" + STEP), "2:1", "must be a file path"),
    Case(
        "vars-files-bad-yaml",
        rb("vars_files: [vf.yml]\n" + STEP),
        None,
        "vf.yml:2:1: YAML syntax error",
        files={"playbooks/vf.yml": "a: [1\n"},
    ),
    Case(
        "vars-files-a-list",
        rb("vars_files: [vf.yml]\n" + STEP),
        "2:1",
        "must hold a mapping",
        files={"playbooks/vf.yml": "- 1\n"},
    ),
    Case(
        "vars-files-not-utf8",
        rb("vars_files: [vf.yml]\n" + STEP),
        None,
        "vf.yml:1:4: vars file is not UTF-8",
        files={"playbooks/vf.yml": b"a: \xff\n"},
    ),
    Case(
        "vars-files-alias-bomb",
        rb("vars_files: [vf.yml]\n" + STEP),
        None,
        "vf.yml:6:4: this value expands",
        files={"playbooks/vf.yml": LAUGHS},
    ),
    Case(
        "vars-files-directory",
        rb("vars_files: [adir]\n" + STEP),
        None,
        "is a directory",
        files={"playbooks/adir/x": "x"},
    ),
    Case("no-steps", rb("description: nothing\n"), "1:1", "no preflight and no steps"),
    Case("steps-is-a-mapping", rb("steps:\n  shell: echo hi\n"), "2:1", "'steps' must be a list of steps"),
    # ---------------------------------------------------------------- steps and keywords
    Case("step-is-a-string", rb("steps:\n  - echo hi\n"), "3:5", "is a string, expected a mapping"),
    Case("step-is-a-number", rb("steps:\n  - 5\n"), "3:5", "must be a mapping (module: args)"),
    Case("step-is-a-list", rb("steps:\n  - [shell, echo]\n"), "3:5", "must be a mapping"),
    Case("step-is-null", rb("steps:\n  -\n  - shell: x\n"), "3:4", "must be a mapping"),
    Case(
        "unknown-keyword", rb("steps:\n  - shell: echo\n    registr: x\n"), "4:5", "did you mean 'register'?"
    ),
    Case("two-modules", rb("steps:\n  - shell: echo\n    command: echo\n"), "4:5", "several module keys"),
    Case("no-module", rb("steps:\n  - name: x\n    retries: 2\n"), "3:5", "names no module"),
    Case("unknown-module", rb("steps:\n  - shel: echo\n"), "3:5", "did you mean 'shell'?"),
    Case(
        "unknown-dotted-module", rb("steps:\n  - check.dsk: {path: /}\n"), "3:5", "did you mean 'check.disk'?"
    ),
    Case(
        "step-name-a-mapping",
        rb("steps:\n  - name: {a: 1}\n    shell: echo\n"),
        "3:5",
        "name must be a string",
    ),
    Case(
        "retries-word",
        rb("steps:\n  - shell: echo\n    retries: abc\n"),
        "4:5",
        "retries must be a whole number",
    ),
    Case(
        "retries-negative",
        rb("steps:\n  - shell: echo\n    retries: -3\n"),
        "4:5",
        "retries must be at least 0",
    ),
    Case(
        "retries-fraction",
        rb("steps:\n  - shell: echo\n    retries: 1.5\n"),
        "4:5",
        "retries must be an integer",
    ),
    Case("delay-word", rb("steps:\n  - shell: echo\n    delay: soon\n"), "4:5", "delay must be a number"),
    Case(
        "timeout-negative",
        rb("steps:\n  - shell: echo\n    timeout: -5\n"),
        "4:5",
        "timeout must be greater than 0",
    ),
    Case(
        "timeout-zero",
        rb("steps:\n  - shell: echo\n    timeout: 0\n"),
        "4:5",
        "timeout must be greater than 0",
    ),
    Case("timeout-infinite", rb("steps:\n  - shell: echo\n    timeout: .inf\n"), "4:5", "finite"),
    Case("timeout-nan", rb("steps:\n  - shell: echo\n    timeout: .nan\n"), "4:5", "finite"),
    Case(
        "become-word",
        rb("steps:\n  - shell: echo\n    become: maybe\n"),
        "4:5",
        "become must be true or false",
    ),
    Case(
        "when-a-mapping",
        rb("steps:\n  - shell: echo\n    when: {a: 1}\n"),
        "4:5",
        "when must be an expression",
    ),
    Case(
        "when-list-of-mapping", rb("steps:\n  - shell: echo\n    when: [ok, {a: 1}]\n"), "4:16", "when item 2"
    ),
    Case(
        "failed-when-a-list-item-list",
        rb("steps:\n  - shell: echo\n    failed_when: [[1]]\n"),
        "4:19",
        "failed_when item 1",
    ),
    Case(
        "register-keyword",
        rb("steps:\n  - shell: echo\n    register: for\n"),
        "4:5",
        "not a valid variable name",
    ),
    Case(
        "register-dash",
        rb("steps:\n  - shell: echo\n    register: a-b\n"),
        "4:5",
        "not a valid variable name",
    ),
    Case("loop-number", rb("steps:\n  - shell: echo\n    loop: 5\n"), "4:5", "loop must be a list"),
    Case("loop-mapping", rb("steps:\n  - shell: echo\n    loop: {a: 1}\n"), "4:5", "dict2items"),
    Case("loop-word", rb("steps:\n  - shell: echo\n    loop: abc\n"), "4:5", "loop must be a list"),
    Case(
        "loop-var-bad",
        rb("steps:\n  - shell: echo\n    loop: [1]\n    loop_control: {loop_var: a b}\n"),
        "5:5",
        "not a valid variable name",
    ),
    Case(
        "loop-control-list",
        rb("steps:\n  - shell: echo\n    loop: [1]\n    loop_control: [1]\n"),
        "5:5",
        "loop_control must be a mapping",
    ),
    Case("tags-mapping", rb("steps:\n  - shell: echo\n    tags: {a: 1}\n"), "4:5", "tags must be a list"),
    Case("step-vars-list", rb("steps:\n  - shell: echo\n    vars: [1]\n"), "4:5", "vars must be a mapping"),
    Case(
        "undo-a-string", rb("steps:\n  - shell: echo\n    undo: echo undo\n"), "4:5", "undo must be one step"
    ),
    Case(
        "undo-unknown-module",
        rb("steps:\n  - shell: echo\n    undo: {shel: x}\n"),
        "4:12",
        "unknown module 'shel'",
    ),
    Case(
        "fallback-mapping",
        rb("steps:\n  - shell: echo\n    fallback: {shell: x}\n"),
        "4:5",
        "fallback must be a non-empty list",
    ),
    Case(
        "preflight-mutates",
        rb("preflight:\n  - copy: {content: x, dest: /tmp/x}\n"),
        "3:5",
        "preflight must be read-only",
    ),
    # ---------------------------------------------------------------- module arguments
    Case("shell-list", rb("steps:\n  - shell: [echo, hi]\n"), "3:5", "shell: arguments must be a mapping"),
    Case("shell-null", rb("steps:\n  - shell:\n"), "3:5", "missing required argument 'cmd'"),
    Case(
        "shell-unknown-arg", rb("steps:\n  - shell: {cmd: x, chdr: /tmp}\n"), "3:21", "did you mean 'chdir'?"
    ),
    Case(
        "command-neither-cmd-nor-argv",
        rb("steps:\n  - command: {chdir: /tmp}\n"),
        "3:5",
        "needs exactly one of cmd or argv",
    ),
    Case("copy-no-dest", rb("steps:\n  - copy: {content: x}\n"), "3:5", "missing required argument 'dest'"),
    Case(
        "copy-src-and-content",
        rb("steps:\n  - copy: {src: a, content: x, dest: /tmp/x}\n"),
        "3:5",
        "given: both",
    ),
    Case(
        "copy-dest-list", rb("steps:\n  - copy: {content: x, dest: [1]}\n"), "3:24", "invalid argument dest"
    ),
    Case("file-bad-state", rb("steps:\n  - file: {path: /tmp/x, state: bogus}\n"), "3:26", "is not one of"),
    Case("template-a-string", rb("steps:\n  - template: x.j2\n"), "3:5", "arguments must be a mapping"),
    Case(
        "check-disk-word",
        rb("steps:\n  - check.disk: {path: /, min_free_gb: lots}\n"),
        "3:27",
        "not of type 'number'",
    ),
    Case(
        "check-memory-negative",
        rb("steps:\n  - check.memory: {min_mb: -5}\n"),
        "3:20",
        "less than the minimum",
    ),
    Case(
        "check-port-range",
        rb("steps:\n  - check.port: {port: 99999999, state: free}\n"),
        "3:18",
        "maximum of 65535",
    ),
    Case(
        "check-version-no-of",
        rb("steps:\n  - check.version: {min: '1'}\n"),
        "3:5",
        "needs at least one of of or command",
    ),
    Case("http-no-url", rb("steps:\n  - http.get: {}\n"), "3:5", "missing required argument 'url'"),
    Case("http-url-number", rb("steps:\n  - http.get: {url: 5}\n"), "3:16", "invalid argument url"),
    Case("wait-word", rb("steps:\n  - wait: {seconds: soon}\n"), "3:12", "not of type 'number'"),
    Case("set-fact-list", rb("steps:\n  - set_fact: [1]\n"), "3:5", "arguments must be a mapping"),
    Case(
        "compose-up-bad-bool",
        rb("steps:\n  - compose.up: {file: /x, wait: maybe}\n"),
        "3:28",
        "not of type 'boolean'",
    ),
    Case(
        "postgres-sql-list",
        rb("steps:\n  - postgres.query: {dsn: x, sql: [1]}\n"),
        "3:30",
        "invalid argument sql",
    ),
    # ---------------------------------------------------------------- Jinja2
    Case("jinja-args", rb('steps:\n  - shell: "echo {{ oops"\n'), "3:5", "template syntax error"),
    Case("jinja-block", rb('steps:\n  - shell: "{% if x %}"\n'), "3:5", "template syntax error"),
    Case(
        "jinja-name",
        rb('steps:\n  - name: "{{ oops"\n    shell: echo\n'),
        "3:5",
        "name: template syntax error",
    ),
    Case("jinja-when", rb("steps:\n  - shell: echo\n    when: x ==\n"), "4:5", "when: template syntax error"),
    Case(
        "jinja-loop",
        rb('steps:\n  - shell: echo\n    loop: "{{ [1, 2 }}"\n'),
        "4:5",
        "loop: template syntax error",
    ),
    Case(
        "jinja-retries",
        rb('steps:\n  - shell: echo\n    retries: "{{ n"\n'),
        "4:5",
        "retries: template syntax error",
    ),
    Case(
        "jinja-until",
        rb("steps:\n  - shell: echo\n    register: r\n    until: r.rc ==== 0\n"),
        "5:5",
        "until: template syntax error",
    ),
    Case(
        "jinja-multiline",
        rb("steps:\n  - shell: |\n      echo ok\n      echo {{ x y }}\n"),
        "4:5",
        "template syntax error",
    ),
    Case(
        "unknown-filter",
        rb("steps:\n  - shell: echo {{ 1 | nofilter }}\n"),
        "3:5",
        "No filter named 'nofilter'",
    ),
    Case("misspelt-filter", rb("steps:\n  - shell: echo {{ 'a' | uper }}\n"), "3:5", "did you mean 'upper'?"),
    Case(
        "unknown-test",
        rb("steps:\n  - shell: echo\n    when: 1 is notatest\n"),
        "4:5",
        "No test named 'notatest'",
    ),
    # host-dependent: found by validate/plan/exec, not by show
    Case(
        "undefined-variable",
        rb("steps:\n  - shell: echo {{ nope }}\n"),
        "3:5",
        "'nope' is undefined",
        static=False,
    ),
    Case(
        "undefined-in-when",
        rb("steps:\n  - shell: echo\n    when: nope == 1\n"),
        "4:5",
        "'nope' is undefined",
        static=False,
    ),
    Case(
        "undefined-attribute",
        rb("vars:\n  a: {b: 1}\nsteps:\n  - shell: echo {{ a.c }}\n"),
        "5:5",
        "no attribute 'c'",
        static=False,
    ),
    Case(
        "recursive-variable",
        rb("vars:\n  a: '{{ b }}'\n  b: '{{ a }}'\nsteps:\n  - shell: echo {{ a }}\n"),
        "6:5",
        "refers to itself",
        static=False,
    ),
    Case(
        "loop-renders-number",
        rb("vars:\n  n: 5\nsteps:\n  - shell: echo\n    loop: '{{ n }}'\n"),
        "6:5",
        "loop must give a list",
        static=False,
    ),
    Case(
        "loop-renders-mapping",
        rb("vars:\n  n: {a: 1}\nsteps:\n  - shell: echo\n    loop: '{{ n }}'\n"),
        "6:5",
        "dict2items",
        static=False,
    ),
    Case(
        "retries-renders-word",
        rb("vars:\n  n: abc\nsteps:\n  - shell: echo\n    retries: '{{ n }}'\n"),
        "6:5",
        "retries must be a whole number",
        static=False,
    ),
    Case(
        "timeout-renders-negative",
        rb("vars:\n  n: -1\nsteps:\n  - shell: echo\n    timeout: '{{ n }}'\n"),
        "6:5",
        "timeout must be greater than 0",
        static=False,
    ),
    Case(
        "bad-regex",
        rb("steps:\n  - shell: echo {{ 'a' | regex_replace('(', 'x') }}\n"),
        "3:5",
        "invalid regular expression",
        static=False,
    ),
    Case(
        "division-by-zero",
        rb("steps:\n  - shell: echo {{ 1 / 0 }}\n"),
        "3:5",
        "division by zero",
        static=False,
    ),
    Case(
        "huge-range",
        rb("steps:\n  - shell: echo {{ range(10**12) | list | length }}\n"),
        "3:5",
        "too large",
        static=False,
    ),
    Case(
        "macro-recursion",
        rb('steps:\n  - shell: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"\n'),
        "3:5",
        "endless recursion",
        static=False,
    ),
    Case(
        "jinja-include",
        rb("steps:\n  - shell: \"{% include 'x' %}\"\n"),
        "3:5",
        "{% include %}",
        static=False,
    ),
    # ---------------------------------------------------------------- template and copy sources
    Case(
        "template-missing",
        rb("steps:\n  - template: {src: missing.j2, dest: /tmp/x}\n"),
        "3:16",
        "template source not found",
        static=False,
    ),
    Case(
        "template-syntax",
        rb("steps:\n  - template: {src: bad.j2, dest: /tmp/x}\n"),
        None,
        "templates/bad.j2:2:1:",
        files={"templates/bad.j2": "line1\nline2 {{ oops\n"},
        static=False,
    ),
    Case(
        "template-undefined",
        rb("steps:\n  - template: {src: und.j2, dest: /tmp/x}\n"),
        None,
        "'nope' is undefined",
        files={"templates/und.j2": "{{ nope }}\n"},
        static=False,
    ),
    Case(
        "template-not-utf8",
        rb("steps:\n  - template: {src: bin.j2, dest: /tmp/x}\n"),
        None,
        "template is not UTF-8",
        files={"templates/bin.j2": b"\xff{{ x }}"},
        static=False,
    ),
    Case(
        "template-directory",
        rb("steps:\n  - template: {src: adir, dest: /tmp/x}\n"),
        None,
        "is a directory",
        files={"templates/adir/x": "x"},
        static=False,
    ),
    Case(
        "copy-src-missing",
        rb("steps:\n  - copy: {src: missing.txt, dest: /tmp/x}\n"),
        "3:12",
        "copy source not found",
        static=False,
    ),
    # ---------------------------------------------------------------- extra vars
    Case(
        "extra-missing-file",
        rb(STEP),
        None,
        "extra vars file not found: missing.json",
        extra=("-e", "@missing.json"),
        static=False,
    ),
    Case(
        "extra-bad-json", rb(STEP), None, "-e:2:1: YAML syntax error", extra=("-e", "{bad json"), static=False
    ),
    Case("extra-json-list", rb(STEP), None, "must hold a mapping", extra=("-e", "[1, 2]"), static=False),
    Case("extra-unclosed-quote", rb(STEP), None, "No closing quotation", extra=("-e", "a='x"), static=False),
    Case("extra-no-equals", rb(STEP), None, "expected key=value", extra=("-e", "novalue"), static=False),
    Case(
        "extra-bad-name",
        rb(STEP),
        None,
        "'1' is not a valid variable name",
        extra=("-e", '{"1": 2}'),
        static=False,
    ),
    Case("extra-at-nothing", rb(STEP), None, "no file named after the @", extra=("-e", "@"), static=False),
    Case(
        "extra-file-bad-yaml",
        rb(STEP),
        None,
        "ev.yml:2:1: YAML syntax error",
        files={"ev.yml": "a: [1\n"},
        extra=("-e", "@ev.yml"),
        static=False,
    ),
    Case(
        "extra-file-directory",
        rb(STEP),
        None,
        "is a directory",
        files={"evd/x": "x"},
        extra=("-e", "@evd"),
        static=False,
    ),
    Case(
        "extra-file-alias-bomb",
        rb(STEP),
        None,
        "ev.yml:6:4: this value expands",
        files={"ev.yml": LAUGHS},
        extra=("-e", "@ev.yml"),
        static=False,
    ),
]
