"""A real OpenSSH server on loopback for the ``--via ssh://`` tests and ``benchmarks/bench_via.py``:
``/usr/sbin/sshd -D -e`` on 127.0.0.1 and a free port, with a generated host key, a generated client key in
its own authorized_keys file, and a known_hosts file that holds only that host key. The "device" is this
machine, logged into as the current user (root included: ``PermitRootLogin prohibit-password``).
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def sshd_path() -> str | None:
    """sshd on PATH, else Debian's /usr/sbin/sshd (a plain user's PATH often lacks /usr/sbin)."""
    found = shutil.which("sshd")
    if found:
        return found
    return "/usr/sbin/sshd" if os.access("/usr/sbin/sshd", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgepack-test", "-f", str(path)],
                   check=True)
    return path


@dataclass
class Sshd:
    port: int
    user: str
    key: Path              # authorized client key
    other_key: Path        # a key sshd does not know
    known_hosts: Path
    workdir: Path
    proc: subprocess.Popen

    def url(self, path: Path | str, *, key: Path | None = None, port: int | None = None, **extra) -> str:
        """``ssh://user@127.0.0.1:port/path?identity=...&known_hosts=...&config=/dev/null`` (no ~/.ssh/config)."""
        query = {"identity": key or self.key, "known_hosts": self.known_hosts, "config": os.devnull, **extra}
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"ssh://{self.user}@127.0.0.1:{port or self.port}{path}?{q}"

    def ssh_args(self) -> list[str]:
        """Options for a plain ``ssh``/``scp`` to this server (scp takes -P for the port: add it yourself)."""
        return ["-F", os.devnull, "-i", str(self.key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def start_sshd(work: Path, sshd_bin: str | None = None) -> Sshd:
    """Start sshd with its keys and config in ``work``; ``stop()`` it when done."""
    host_key, key, other = keygen(work / "host_key"), keygen(work / "client_key"), keygen(work / "other_key")
    (work / "authorized_keys").write_text(Path(f"{key}.pub").read_text())
    port = free_port()
    conf = work / "sshd_config"
    conf.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {work}/sshd.pid",
        f"AuthorizedKeysFile {work}/authorized_keys", "PubkeyAuthentication yes", "PasswordAuthentication no",
        "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
        "MaxStartups 50", "LogLevel VERBOSE", "Subsystem sftp internal-sftp"]) + "\n")
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)     # privilege separation folder sshd needs as root
    with open(work / "sshd.log", "wb") as log:
        proc = subprocess.Popen([sshd_bin or sshd_path() or "sshd", "-D", "-e", "-f", str(conf)],
                                stdout=log, stderr=log)
    _wait_listening(proc, port, work / "sshd.log")
    pub = Path(f"{host_key}.pub").read_text().split()
    (work / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    return Sshd(port, getpass.getuser(), key, other, work / "known_hosts", work, proc)


def _wait_listening(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"sshd did not start on port {port}: {log.read_text()[-800:]}")
