# Copyright: Hubfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of docker_common: comparing wanted and actual, TLS settings, messages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.hubfleet.jupyterhub.plugins.module_utils import docker_common
from ansible_collections.hubfleet.jupyterhub.plugins.module_utils.docker_common import (
    docker_argument_spec,
    docker_error_message,
    format_differences,
    label_differences,
    make_diff,
    option_differences,
    stringify_options,
    tls_problem,
    tls_settings,
)


def test_options_not_given_are_not_compared():
    assert option_differences({"driver": None, "internal": None}, {"driver": "bridge", "internal": True}) == {}


def test_differing_option_reports_wanted_and_actual():
    assert option_differences({"internal": True}, {"internal": False}) == {"internal": {"wanted": True, "actual": False}}


def test_false_is_compared_not_skipped():
    assert option_differences({"attachable": False}, {"attachable": True}) == {
        "attachable": {"wanted": False, "actual": True}
    }


def test_missing_actual_option_differs():
    assert option_differences({"subnet": "10.0.0.0/24"}, {}) == {"subnet": {"wanted": "10.0.0.0/24", "actual": None}}


def test_dict_options_compare_only_given_keys():
    actual = {"driver_options": {"a": "1", "b": "2"}}
    assert option_differences({"driver_options": {"a": "1"}}, actual) == {}
    assert option_differences({"driver_options": {"a": "2"}}, actual) == {
        "driver_options": {"wanted": {"a": "2"}, "actual": {"a": "1", "b": "2"}}
    }
    assert option_differences({"driver_options": {"c": "3"}}, {"driver_options": None})["driver_options"]["actual"] == {}


def test_extra_labels_on_the_object_are_fine():
    assert label_differences({"a": "1"}, {"a": "1", "other": "x"}) == {}


def test_missing_or_changed_labels_are_reported_by_key():
    assert label_differences({"a": "1", "b": "2"}, {"a": "9"}) == {
        "labels.a": {"wanted": "1", "actual": "9"},
        "labels.b": {"wanted": "2", "actual": None},
    }


def test_no_labels_wanted_means_no_difference():
    assert label_differences({}, None) == {}
    assert label_differences(None, {"a": "1"}) == {}


def test_format_differences_is_sorted_and_readable():
    text = format_differences({"b": {"wanted": 1, "actual": 2}, "a": {"wanted": "x", "actual": None}})
    assert text == "a: wanted 'x', actual None; b: wanted 1, actual 2"


def test_make_diff_headers_are_optional():
    assert make_diff({}, {"a": 1}) == {"before": {}, "after": {"a": 1}}
    assert make_diff({}, {}, "x", "y") == {"before": {}, "after": {}, "before_header": "x", "after_header": "y"}


@pytest.mark.parametrize(
    "given, stored",
    [
        ({"mtu": 1450}, {"mtu": "1450"}),
        ({"flag": True, "off": False}, {"flag": "true", "off": "false"}),
        ({"type": "tmpfs"}, {"type": "tmpfs"}),
        ({}, {}),
    ],
)
def test_driver_options_are_stored_as_docker_strings(given, stored):
    assert stringify_options(given) == stored


def test_stringify_none_stays_none():
    assert stringify_options(None) is None


def test_argument_spec_has_every_connection_option_with_env_fallback():
    spec = docker_argument_spec()
    assert sorted(spec) == sorted(
        ["docker_host", "tls", "validate_certs", "ca_path", "client_cert", "client_key", "timeout", "api_version"]
    )
    assert spec["docker_host"]["default"] == "unix:///var/run/docker.sock"
    assert spec["docker_host"]["fallback"][1] == ["DOCKER_HOST"]
    assert spec["validate_certs"]["fallback"][1] == ["DOCKER_TLS_VERIFY"]
    assert spec["api_version"]["default"] == "auto"


def test_each_call_returns_a_fresh_spec():
    first = docker_argument_spec()
    first["timeout"]["default"] = 1
    assert docker_argument_spec()["timeout"]["default"] == 60


def _params(**overrides):
    params = dict(tls=False, validate_certs=False, ca_path=None, client_cert=None, client_key=None)
    params.update(overrides)
    return params


def test_no_tls_by_default(monkeypatch):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    assert tls_settings(_params()) is None
    assert tls_problem(None) is None


def test_tls_files_default_to_docker_cert_path(monkeypatch, tmp_path):
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text(u"x")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    settings = tls_settings(_params(validate_certs=True))
    assert settings == dict(
        ca_cert=str(tmp_path / "ca.pem"), client_cert=str(tmp_path / "cert.pem"),
        client_key=str(tmp_path / "key.pem"), verify=True,
    )
    assert tls_problem(settings) is None


def test_explicit_tls_files_win_over_docker_cert_path(monkeypatch, tmp_path):
    (tmp_path / "ca.pem").write_text(u"x")
    own = tmp_path / "own-ca.pem"
    own.write_text(u"x")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path))
    assert tls_settings(_params(tls=True, ca_path=str(own)))["ca_cert"] == str(own)


def test_verify_without_ca_names_ca_path(monkeypatch):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    assert "ca_path" in tls_problem(tls_settings(_params(validate_certs=True)))


def test_cert_without_key_is_a_problem(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    cert = tmp_path / "cert.pem"
    cert.write_text(u"x")
    assert "client_key" in tls_problem(tls_settings(_params(tls=True, client_cert=str(cert))))


def test_missing_tls_file_names_the_option(monkeypatch, tmp_path):
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    problem = tls_problem(tls_settings(_params(tls=True, ca_path=str(tmp_path / "nope.pem"))))
    assert problem.startswith("ca_path:")


class _FakeAPIError(Exception):
    def __init__(self, explanation, status_code):
        super(_FakeAPIError, self).__init__("raw")
        self.explanation = explanation
        self.status_code = status_code


def test_api_error_message_uses_explanation_and_status():
    assert docker_error_message(_FakeAPIError(b"network is in use", 403)) == "network is in use (HTTP 403)"


def test_plain_exception_message():
    assert docker_error_message(ValueError("boom")) == "boom"
    assert docker_error_message(RuntimeError()) == "RuntimeError"


def test_real_docker_errors_are_caught_when_the_sdk_is_installed():
    docker = pytest.importorskip("docker")
    assert docker_common.HAS_DOCKER
    error = docker.errors.APIError("500 Server Error", explanation="no such volume")
    assert isinstance(error, docker_common.DOCKER_ERRORS)
    assert "no such volume" in docker_error_message(error)
