"""``--via`` URLs: the accepted forms, clear errors naming them, and no way to smuggle an ssh option in."""
from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgepack.errors import DeliveryError
from edgepack.fleet.via import ACCEPTED, parse_via
from edgepack.fleet.via_ssh import SshOptions


@pytest.mark.parametrize("url, scheme, path, host, user, port", [
    ("dir:/media/sd/edgepack", "dir", "/media/sd/edgepack", None, None, None),
    ("dir:relative/state", "dir", "relative/state", None, None, None),
    ("dir:///mnt/a%20b", "dir", "/mnt/a b", None, None, None),
    ("ssh://pi@cam-1/var/lib/edgepack", "ssh", "/var/lib/edgepack", "cam-1", "pi", None),
    ("ssh://cam-1.local:2222/srv/state/", "ssh", "/srv/state/", "cam-1.local", None, 2222),
    ("ssh://root@[::1]:22/s", "ssh", "/s", "::1", "root", 22),
    ("ssh://pi@10.0.0.7/~/edgepack", "ssh", "edgepack", "10.0.0.7", "pi", None),
    ("ssh://pi@h/a%20b", "ssh", "/a b", "h", "pi", None),
])
def test_accepted_forms(url, scheme, path, host, user, port):
    via = parse_via(url)
    assert (via.scheme, via.path, via.host, via.user, via.port) == (scheme, path, host, user, port)


def test_dir_expands_home():
    assert parse_via("dir:~/state").path == os.path.expanduser("~/state")


def test_query_options_reach_ssh():
    via = parse_via("ssh://pi@h:2200/s?identity=/k/id&known_hosts=/k/kh&config=/dev/null&timeout=3"
                    "&device_cmd=/opt/venv/bin/edgepack-device")
    assert via.options["device_cmd"] == "/opt/venv/bin/edgepack-device"
    argv = SshOptions.make(via).argv(via)
    assert argv[:3] == ["ssh", "-o", "BatchMode=yes"] and argv[-2:] == ["--", "pi@h"]
    for pair in (["-i", "/k/id"], ["-F", "/dev/null"], ["-p", "2200"], ["-o", "ConnectTimeout=3"],
                 ["-o", "UserKnownHostsFile=/k/kh"], ["-o", "StrictHostKeyChecking=yes"]):
        assert any(argv[i:i + 2] == pair for i in range(len(argv))), pair
    # keyword arguments win over the query
    assert "-i" in (kw := SshOptions.make(via, identity_file="/other").argv(via)) and "/other" in kw


def test_plain_url_honours_ssh_config():
    """No options: nothing overrides ~/.ssh/config or ~/.ssh/known_hosts."""
    via = parse_via("ssh://cam-1/s")
    argv = SshOptions.make(via).argv(via)
    assert not {"-F", "-i", "-p"} & set(argv) and not any("KnownHosts" in a or "HostKey" in a for a in argv)
    assert argv[-1] == "cam-1"


@pytest.mark.parametrize("url, why", [
    ("", "empty"),
    ("dir:", "state folder"),
    ("ftp://h/x", "unknown scheme"),
    ("/mnt/sd", "unknown scheme"),
    ("ssh://h", "state folder"),
    ("ssh://h/", "state folder"),
    ("ssh://h/~", "state folder"),
    ("ssh://h:0/s", "port"),
    ("ssh://h:99999/s", "port"),
    ("ssh://h:abc/s", "port"),
    ("ssh://u:secret@h/s", "passwords"),
    ("ssh://-oProxyCommand=x/s", "host"),
    ("ssh://-oProxyCommand=x@h/s", "user"),
    ("ssh://h/s?identity=a&identity=b", "repeated"),
    ("ssh://h/s?port=1", "unknown"),
    ("ssh://h/s?timeout=-1", "timeout"),
    ("ssh://h/s\nx", "control"),
    ("dir://host/x", "no host"),
])
def test_bad_urls_name_the_accepted_forms(url, why):
    with pytest.raises(DeliveryError) as err:
        parse_via(url)
    assert why in str(err.value) and ACCEPTED in str(err.value) and err.value.exit_code == 10


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(ssh|dir)://?[\x00-\x7f]{0,40}", fullmatch=True))
def test_any_text_parses_or_is_refused_clearly(url):
    try:
        via = parse_via(url)
    except DeliveryError as exc:
        assert "accepted forms" in str(exc)
        return
    assert via.scheme in ("dir", "ssh") and via.path
    if via.scheme == "ssh":     # nothing that reaches ssh's argv can be read as an option
        assert not via.host.startswith("-") and not (via.user or "").startswith("-")
        argv = SshOptions.make(via).argv(via)
        assert argv[-2] == "--" and argv[-1].endswith(via.host)


@settings(max_examples=100, deadline=None)
@given(user=st.from_regex(r"[a-z_][a-z0-9_-]{0,10}", fullmatch=True),
       host=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
       port=st.none() | st.integers(1, 65535),
       path=st.lists(st.from_regex(r"[A-Za-z0-9._-]{1,8}", fullmatch=True), min_size=1, max_size=4))
def test_well_formed_ssh_urls_round_trip(user, host, port, path):
    folder = "/" + "/".join(path)
    via = parse_via(f"ssh://{user}@{host}{f':{port}' if port else ''}{folder}")
    assert (via.user, via.host, via.port, via.path) == (user, host, port, folder)
