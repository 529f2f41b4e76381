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


@dataclass(frozen=True)
class OtherUser:
    """One more account in the overlay (a become target, or a second login user)."""

    name: str
    uid: int
    password: str = field(repr=False)
    shell: str = "/bin/bash"


def user_overlay(
    authorized_key: str,
    name: str = "rbtest",
    uid: int = 4242,
    password: str = "Pw-4242-secret",
    others: tuple[OtherUser, ...] = (),
    sudoers: str | None = None,
) -> LoginUser:
    """A non-root login user that exists only inside one sshd's private mount namespace: copies of
    /etc/passwd, /etc/shadow, /etc/group (+ /etc/sudoers.d with ``name ALL=(ALL) ALL`` when sudo is
    installed) are bind-mounted over the real ones for that sshd alone. Nothing on the machine changes.
    ``others`` adds accounts (with their passwords, for su; their homes under the temp dir, the
    same authorized key); ``sudoers`` replaces the sudo rule (e.g. ``"rbtest ALL=(ALL) NOPASSWD: ALL"``).
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
    entries: dict[str, list[str]] = {"passwd": [], "shadow": [], "group": []}
    for who in (OtherUser(name, uid, password), *others):
        h = home if who.name == name else d / f"home-{who.name}"
        if who.name != name:
            (h / ".ssh").mkdir(parents=True, exist_ok=True)
            (h / ".ssh" / "authorized_keys").write_text(authorized_key)
            for p in (h, h / ".ssh", h / ".ssh" / "authorized_keys"):
                os.chown(p, who.uid, who.uid)
        digest = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=who.password, capture_output=True, text=True, check=True
        ).stdout.strip()
        entries["passwd"].append(f"{who.name}:x:{who.uid}:{who.uid}:runbook test:{h}:{who.shell}")
        entries["shadow"].append(f"{who.name}:{digest}:20000:0:99999:7:::")
        entries["group"].append(f"{who.name}:x:{who.uid}:")
    binds: dict[str, str] = {}
    for f, lines in entries.items():
        copy = d / f
        copy.write_text(Path(f"/etc/{f}").read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n")
        copy.chmod(0o640 if f == "shadow" else 0o644)
        binds[f"/etc/{f}"] = str(copy)
    if os.path.isdir("/etc/sudoers.d"):
        sd = d / "sudoers.d"
        shutil.copytree("/etc/sudoers.d", sd, dirs_exist_ok=True)
        (sd / "runbook-test").write_text((sudoers or f"{name} ALL=(ALL:ALL) ALL") + "\n")
        (sd / "runbook-test").chmod(0o440)
        binds["/etc/sudoers.d"] = str(sd)
    return LoginUser(d, name, uid, password, home, binds)
