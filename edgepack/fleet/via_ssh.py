"""``--via ssh://``: the system OpenSSH client streams the bundle into ``STATE_DIR/inbox/`` and, with
install, runs ``edgepack-device install`` on it, all in one ssh session. The bytes go to the stdin of a
remote POSIX sh script (``cat > inbox/<name>.part``) in 1 MiB chunks: bounded memory, progress per chunk.
The script checks that the device command exists and that the free space suffices before reading a byte,
counts the bytes after, renames the ``.part`` (atomic) and removes whatever it wrote on any failure.
"""
from __future__ import annotations

import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import DeliveryError

from .via import CHUNK, Progress, Via
from .via_ssh_errors import install_error, status_of, upload_error

_MARK = "edgepack-via-path "
_UPLOAD = (
    's={state}; n={size}; '
    'mkdir -p -- "$s/inbox" && s=$(CDPATH= cd -- "$s" && pwd) || exit 72; d="$s/inbox"; p="$d/"{name}.part; '
    'a=$(df -Pk -- "$d" 2>/dev/null | awk \'NR==2 {{print $4}}\'); '
    'case "$a" in ""|*[!0-9]*) ;; *) if [ "$a" -lt $(( (n + 1023) / 1024 )) ]; then '
    'printf "edgepack-via: no space left in %s: the bundle needs %s bytes, %s KiB are free\\n" "$d" "$n" "$a" >&2; '
    'exit 71; fi;; esac; '
    'trap \'rm -f -- "$p"\' EXIT HUP INT TERM PIPE; '
    'cat > "$p" || exit 73; '
    'g=$(wc -c < "$p"); if [ "$g" -ne "$n" ]; then '
    'echo "edgepack-via: the upload stopped after $g of $n bytes" >&2; exit 70; fi; '
    'sync -- "$p" 2>/dev/null; f="$d/"{final}; mv -f -- "$p" "$f" || exit 74; '
)
# without install: the inbox file is the result (the device installs it on its next start, or its agent at once)
_DROP = 'trap - EXIT HUP INT TERM PIPE; printf "{mark}%s\\n" "$f"'
# with install: a name recover() and the agent's inbox watcher skip, installed (and consumed) by the command
# itself in this same session; if the command never took it, it is removed: nothing is left behind
_CHECK = ('command -v -- {word} >/dev/null 2>&1 || '
          '{{ printf "edgepack-via: device command not found: %s\\n" {word} >&2; exit 127; }}; ')
_INSTALL = ('trap \'rm -f -- "$f"\' EXIT HUP INT TERM PIPE; printf "{mark}%s\\n" "$f"; '
            '{cmd} install "$f" --state-dir "$s" --json --update-id {uid}{keys}')


def remote_script(via: Via, name: str, size: int, device_cmd: list[str] | None, trust_keys=()) -> str:
    """The POSIX sh script run on the device: space check, upload into ``inbox/<name>.part``, rename, and
    (with ``device_cmd``) ``<device_cmd> install`` of it. Every value in it is quoted."""
    q = shlex.quote
    state = via.path.rstrip("/") or "/"
    if device_cmd is None:
        return _UPLOAD.format(state=q(state), size=size, name=q(name), final=q(name)) + _DROP.format(mark=_MARK)
    uid = "via-" + re.sub(r"[^A-Za-z0-9._-]", "-", name.removesuffix(".edgepack"))[:60]
    keys = "".join(f" --trust-key {q(k)}" for k in trust_keys)
    return (_CHECK.format(word=q(device_cmd[0])) + _UPLOAD.format(state=q(state), size=size, name=q(name),
                                                                   final=q(name + ".install"))
            + _INSTALL.format(mark=_MARK, cmd=shlex.join(device_cmd), uid=q(uid), keys=keys))


@dataclass(frozen=True)
class SshOptions:
    identity: str | None
    known_hosts: str | None
    config: str | None
    timeout: float

    @classmethod
    def make(cls, via: Via, *, identity_file=None, known_hosts=None, ssh_config=None, connect_timeout=None):
        """Keyword arguments win over the URL's query; paths are expanded (~) on this machine."""
        pick = lambda kw, key: str(Path(kw if kw is not None else via.options[key]).expanduser()) \
            if kw is not None or key in via.options else None  # noqa: E731
        timeout = connect_timeout if connect_timeout is not None else via.options.get("timeout", 10.0)
        return cls(pick(identity_file, "identity"), pick(known_hosts, "known_hosts"),
                   pick(ssh_config, "config"), float(timeout))

    def argv(self, via: Via) -> list[str]:
        """``ssh`` with BatchMode (never prompts) and these options, up to the destination."""
        args = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(self.timeout))}",
                "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=3"]
        if self.config:
            args += ["-F", self.config]
        if self.identity:
            args += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        if self.known_hosts:
            args += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        if via.port:
            args += ["-p", str(via.port)]
        return args + ["--", f"{via.user}@{via.host}" if via.user else via.host]


def _spawn(how, argv: list[str], **kwargs):
    """``subprocess.Popen`` / ``run`` of ssh, or a DeliveryError when this machine has no ssh client."""
    try:
        return how(argv, **kwargs)
    except FileNotFoundError:
        raise DeliveryError("no ssh client on this machine (`ssh` is not on PATH)",
                            hint="install OpenSSH's client (apt-get install openssh-client)") from None


def send(via: Via, opts: SshOptions, src: Path, name: str, progress: Progress | None, *,
         device_cmd: str | None, trust_keys=()) -> dict:
    """Upload ``src`` into ``<state dir>/inbox/`` and, with ``device_cmd``, install it, in one ssh session.

    Returns the ``deliver()`` result; raises DeliveryError (see ``_upload_error`` / ``_install_error``)."""
    words = (shlex.split(device_cmd) or ["edgepack-device"]) if device_cmd is not None else None
    total = src.stat().st_size
    code, out, errors = _run(via, opts, remote_script(via, name, total, words, trust_keys), src, total, progress)
    path, body = _split(out)
    if path is None:
        raise upload_error(via, code, errors, device_cmd)
    if words is None:
        return {"via": "ssh", "path": path, "installed": False, "status": None}
    status = status_of(body)
    if code == 0 and status is not None and status.get("state") == "committed":
        return {"via": "ssh", "path": path, "installed": True, "status": status}
    raise install_error(via, code, errors, status, device_cmd)


def _run(via: Via, opts: SshOptions, script: str, src: Path, total: int, progress) -> tuple[int, str, str]:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = _spawn(subprocess.Popen, opts.argv(via) + ["sh -c " + shlex.quote(script)],
                      stdin=subprocess.PIPE, stdout=out, stderr=err)
        try:
            _stream(proc, src, total, progress)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        code = proc.wait()
        out.seek(0), err.seek(0)
        return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def _split(out: str) -> tuple[str | None, str]:
    """(the remote path the script announced, the rest of stdout), or (None, stdout) before the upload ended."""
    head, _, body = out.partition("\n")
    return (head[len(_MARK):], body) if head.startswith(_MARK) else (None, out)


def _stream(proc: subprocess.Popen, src: Path, total: int, progress: Progress | None) -> None:
    done = 0
    try:
        with open(src, "rb") as fh:
            while chunk := fh.read(CHUNK):
                proc.stdin.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, total)
        proc.stdin.close()
    except BrokenPipeError:        # the remote side gave up (no space, auth...): its exit code says why
        pass


