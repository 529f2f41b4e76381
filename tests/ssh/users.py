"""A non-root login user that exists only inside one sshd's mount namespace (for become tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LoginUser:
    dir: Path
    name: str
    uid: int
    password: str = field(repr=False)
    home: Path
    binds: dict[str, str]  # pass to start_sshd(binds=...)


def user_overlay(
    authorized_key: str,
    name: str = "rbtest",
    uid: int = 4242,
    password: str = "Pw-4242-secret",
) -> LoginUser:
    """A non-root login user that exists only inside one sshd's private mount namespace: copies of
    /etc/passwd, /etc/shadow, /etc/group (+ /etc/sudoers.d with ``name ALL=(ALL) ALL`` when sudo is
    installed) are bind-mounted over the real ones for that sshd alone. Nothing on the machine changes.
    Its files live in a world-traversable temp dir (``LoginUser.dir``; remove it when done)."""
    d = Path(tempfile.mkdtemp(prefix=f"runbook-user-{name}-"))
    home = d / "home"
    home.mkdir(parents=True, exist_ok=True)
    (home / ".bashrc").write_text("")
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "authorized_keys").write_text(authorized_key)
    for p in (home, home / ".bashrc", home / ".ssh", home / ".ssh" / "authorized_keys"):
        os.chown(p, uid, uid)
    d.chmod(0o755)
    digest = subprocess.run(
        ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
    ).stdout.strip()
    binds: dict[str, str] = {}
    for f, line in (
        ("passwd", f"{name}:x:{uid}:{uid}:runbook test:{home}:/bin/bash"),
        ("shadow", f"{name}:{digest}:20000:0:99999:7:::"),
        ("group", f"{name}:x:{uid}:"),
    ):
        copy = d / f
        copy.write_text(Path(f"/etc/{f}").read_text().rstrip("\n") + f"\n{line}\n")
        copy.chmod(0o640 if f == "shadow" else 0o644)
        binds[f"/etc/{f}"] = str(copy)
    if os.path.isdir("/etc/sudoers.d"):
        sd = d / "sudoers.d"
        shutil.copytree("/etc/sudoers.d", sd, dirs_exist_ok=True)
        (sd / "runbook-test").write_text(f"{name} ALL=(ALL:ALL) ALL\n")
        (sd / "runbook-test").chmod(0o440)
        binds["/etc/sudoers.d"] = str(sd)
    return LoginUser(d, name, uid, password, home, binds)
