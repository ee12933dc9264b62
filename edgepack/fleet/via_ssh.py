"""``--via ssh://``: the system OpenSSH client streams the bundle into ``STATE_DIR/inbox/`` and runs
``edgepack-device install`` there. Bytes go through ``ssh host 'cat > inbox/<name>.part'`` in 1 MiB
chunks (bounded memory, progress per chunk); a remote POSIX sh script checks the free space first, the
byte count after, then renames the ``.part`` (atomic) and removes it on any failure.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgepack.errors import DeliveryError

from .via import CHUNK, Progress, Via

# exit codes of the upload script (below ssh's own 255)
_SHORT, _NOSPACE, _MKDIR, _WRITE, _RENAME = 70, 71, 72, 73, 74
INSTALL_TIMEOUT = 3600   # seconds for the remote install (verify, copy, health check) to answer
UPLOAD = (
    'd={inbox}; p={part}; f={final}; n={size}; '
    'mkdir -p -- "$d" || exit 72; '
    'a=$(df -Pk -- "$d" 2>/dev/null | awk \'NR==2 {{print $4}}\'); '
    'case "$a" in ""|*[!0-9]*) ;; *) if [ "$a" -lt $(( (n + 1023) / 1024 )) ]; then '
    'echo "edgepack-via: no space left in $d: the bundle needs $n bytes, ${{a}} KiB are free" >&2; exit 71; fi;; esac; '
    'trap \'rm -f -- "$p"\' EXIT HUP INT TERM PIPE; '
    'cat > "$p" || exit 73; '
    'g=$(wc -c < "$p"); if [ "$g" -ne "$n" ]; then '
    'echo "edgepack-via: the upload stopped after $g of $n bytes" >&2; exit 70; fi; '
    'sync -- "$p" 2>/dev/null; mv -f -- "$p" "$f" || exit 74; trap - EXIT HUP INT TERM PIPE; echo ok'
)


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


def _where(via: Via) -> str:
    return f"{via.user + '@' if via.user else ''}{via.host}{':' + str(via.port) if via.port else ''}"


def upload(via: Via, opts: SshOptions, src: Path, name: str, progress: Progress | None) -> str:
    """Stream ``src`` to ``<state dir>/inbox/<name>`` on the device; returns that remote path."""
    inbox = via.path.rstrip("/") + "/inbox"
    final = f"{inbox}/{name}"
    total = src.stat().st_size
    script = UPLOAD.format(inbox=shlex.quote(inbox), part=shlex.quote(final + ".part"),
                           final=shlex.quote(final), size=total)
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
        text, errors = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0 or text.strip() != "ok":
        raise _upload_error(via, code, errors, inbox)
    return final


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


def _tail(text: str, n: int = 6) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return " | ".join(lines[-n:])[:1200]


def _ssh_error(via: Via, errors: str) -> DeliveryError | None:
    """ssh's own failures (exit 255) as a clear DeliveryError, or None when it is not one."""
    where, low = _where(via), errors.lower()
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return DeliveryError(f"ssh to {where}: the host key is unknown or changed: {_tail(errors, 2)}",
                             hint="check the device's fingerprint, then add it to known_hosts "
                                  "(ssh-keyscan) or pass known_hosts=FILE")
    if "permission denied" in low or "too many authentication failures" in low:
        return DeliveryError(f"ssh to {where}: authentication failed: {_tail(errors, 1)}",
                             hint="pass the device's key with identity=KEY (or -i in ~/.ssh/config) and check "
                                  "its authorized_keys; passwords are not asked (BatchMode)")
    for marker in ("connection refused", "timed out", "no route to host", "could not resolve",
                   "network is unreachable", "connection closed", "connection reset", "name or service"):
        if marker in low:
            return DeliveryError(f"ssh to {where}: host unreachable: {_tail(errors, 1)}",
                                 hint="check the host name, the port and that sshd runs on the device")
    return None


def _upload_error(via: Via, code: int, errors: str, inbox: str) -> DeliveryError:
    where = _where(via)
    if code == 255 and (found := _ssh_error(via, errors)):
        return found
    if code == _NOSPACE or "no space left" in errors.lower():
        return DeliveryError(f"no space on {where} for the bundle in {inbox}: {_tail(errors, 2)}",
                             hint="free some space on the device; nothing was installed")
    what = {_MKDIR: f"cannot create {inbox}", _WRITE: f"cannot write into {inbox}",
            _RENAME: f"cannot rename the upload in {inbox}", _SHORT: "the upload was cut short"}
    return DeliveryError(f"upload to {where} failed ({what.get(code, f'exit {code}')}): "
                         f"{_tail(errors) or 'no error text'}",
                         hint="check the state folder's path and permissions on the device; no .part is left")


def install(via: Via, opts: SshOptions, remote: str, device_cmd: str, trust_keys: list[str]) -> dict:
    """Run ``<device_cmd> install <remote> --state-dir <dir> --json`` on the device; its status when committed."""
    words = shlex.split(device_cmd) or ["edgepack-device"]
    args = [*words, "install", remote, "--state-dir", via.path, "--json"]
    for key in trust_keys:
        args += ["--trust-key", key]
    try:
        proc = _spawn(subprocess.run, opts.argv(via) + [shlex.join(args)], capture_output=True,
                      timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise DeliveryError(f"{_where(via)}: no answer from {device_cmd} install within {INSTALL_TIMEOUT} s",
                            hint="see `edgepack-device ota-status` on the device") from None
    out, errors = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
    status = _status(out)
    if proc.returncode == 0 and status is not None and status.get("state") == "committed":
        return status
    where = _where(via)
    if proc.returncode == 255 and (found := _ssh_error(via, errors)):
        raise found
    missing = proc.returncode == 127 or re.search(r"no module named '?edgepack_runtime", errors.lower())
    if missing:
        raise DeliveryError(f"{where}: the device command {device_cmd!r} was not found: {_tail(errors, 2)}",
                            hint="install edgepack-runtime on the device, or pass device_cmd=/path/to/venv/bin/"
                                 "edgepack-device (a non-interactive ssh session may not have the venv on PATH); "
                                 f"meanwhile the bundle waits in {remote}: the device installs it on its next start",
                            remote_error=errors.strip())
    if "invalid choice: 'install'" in errors:
        raise DeliveryError(f"{where}: {device_cmd} has no install command (an older edgepack-runtime)",
                            hint="upgrade edgepack-runtime on the device", remote_error=errors.strip())
    state = status.get("state") if status else None
    reason = (status or {}).get("reason") or _tail(errors, 3) or f"exit {proc.returncode}"
    raise DeliveryError(f"{where}: the device did not install the bundle"
                        f"{f' (state {state})' if state else ''}: {reason}",
                        hint="the previous model keeps serving; see the device's error above",
                        status=status, remote_error=errors.strip() or None)


def _status(out: str) -> dict | None:
    """The device's JSON status: the whole stdout, or its last JSON line; None when there is none."""
    for text in [out, *reversed(out.strip().splitlines())]:
        try:
            doc = json.loads(text)
        except ValueError:
            continue
        if isinstance(doc, dict):
            return doc.get("status") if isinstance(doc.get("status"), dict) else doc
    return None
