"""Issue 29, closed by default: blank client keys are start-up errors, and a service bound beyond
loopback without keys refuses to start unless RSIM_ALLOW_ANONYMOUS=true says so."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.settings import ServiceSettings
from tests.support.procs import REPO

URL = "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("keys", [" , ", " ", "k1,,k2", "k1,", ",k1"])
def test_a_blank_key_entry_is_a_start_up_error(keys):
    with pytest.raises(ValueError, match="RSIM_API_KEYS has a blank entry"):
        ServiceSettings(reasoner_url=URL, api_keys=keys).api_key_hashes()


@pytest.mark.parametrize("text", ["", "\n", "  \n\t\n"])
def test_a_keys_file_without_a_key_is_a_start_up_error(tmp_path, text):
    keys = tmp_path / "keys"
    keys.write_text(text)
    with pytest.raises(ValueError, match="RSIM_API_KEYS_FILE holds no key"):
        ServiceSettings(reasoner_url=URL, api_keys_file=keys).api_key_hashes()
    keys.write_text(text + "a-key\n\n")  # blank lines around keys are fine
    assert len(ServiceSettings(reasoner_url=URL, api_keys_file=keys).api_key_hashes()) == 1


@pytest.mark.parametrize("keys", [" , ", " ", "a1,,a2", "a1,"])
def test_a_blank_admin_key_entry_is_a_start_up_error(keys):
    with pytest.raises(ValueError, match="RSIM_ADMIN_KEYS has a blank entry"):
        ServiceSettings(reasoner_url=URL, api_keys="k1", admin_keys=keys).admin_key_hashes()


def test_admin_keys_need_client_keys():
    """Without client keys every caller may label every trace: an admin key there would promise what it
    cannot keep."""
    with pytest.raises(ValidationError, match="RSIM_ADMIN_KEYS needs RSIM_API_KEYS"):
        ServiceSettings(reasoner_url=URL, admin_keys="adm")
    assert len(ServiceSettings(reasoner_url=URL, api_keys="k1", admin_keys="adm, adm2").admin_key_hashes()) == 2


def test_loopback_hosts():
    from service.settings import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", ""]))


def test_no_keys_beyond_loopback_refuses_unless_anonymous_is_explicit(tmp_path):
    open_settings = ServiceSettings(reasoner_url=URL)
    open_settings.check_exposure("127.0.0.1")  # the tests' and `rsim up`'s default: stays open
    for host in ("0.0.0.0", "::", "10.0.0.5"):
        with pytest.raises(ValueError, match=f"refusing to serve on {host} without client API keys") as e:
            open_settings.check_exposure(host)
        assert "\n" not in str(e.value) and "RSIM_ALLOW_ANONYMOUS=true" in str(e.value)
    ServiceSettings(reasoner_url=URL, allow_anonymous=True).check_exposure("0.0.0.0")
    ServiceSettings(reasoner_url=URL, api_keys="k").check_exposure("0.0.0.0")
    keys = tmp_path / "keys"
    keys.write_text("k\n")
    ServiceSettings(reasoner_url=URL, api_keys_file=keys).check_exposure("0.0.0.0")


def test_anonymous_and_keys_together_are_a_contradiction():
    with pytest.raises(ValidationError, match="contradicts RSIM_API_KEYS"):
        ServiceSettings(reasoner_url=URL, api_keys="k", allow_anonymous=True)


def serve(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RSIM_")}
    return subprocess.run([sys.executable, "-m", "clients.cli", "serve", "service", *args], cwd=REPO,
                          env={**base, "RSIM_REASONER_URL": URL, "RSIM_TRACES": "false", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("args", "env", "message"), [
    (("--host", "0.0.0.0"), {}, "refusing to serve on 0.0.0.0 without client API keys"),
    (("--host", "127.0.0.1"), {"RSIM_API_KEYS": " , "}, "RSIM_API_KEYS has a blank entry"),
    (("--host", "0.0.0.0"), {"RSIM_API_KEYS": "k", "RSIM_ALLOW_ANONYMOUS": "true"}, "contradicts RSIM_API_KEYS"),
])
def test_rsim_serve_refuses_in_one_line(args, env, message):
    r = serve(*args, "--port", "9", **env)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
