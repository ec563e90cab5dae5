"""Finding Ray's auth token the way Ray does (``pipelines.ray_auth``): a client that misses it
gets HTTP 401 from any cluster started on a machine where Ray ever ran."""

import pytest

from pipelines.ray_auth import RayAuthError, auth_headers, explain_refusal, find_ray_token


@pytest.fixture
def home(tmp_path):
    (tmp_path / ".ray").mkdir()
    return tmp_path


def test_the_default_token_file_is_found_with_the_mode_unset(home):
    (home / ".ray" / "auth_token").write_text("from-file\n")
    assert find_ray_token({"HOME": str(home)}) == "from-file"


def test_no_token_anywhere_is_none(home):
    assert find_ray_token({"HOME": str(home)}) is None


def test_precedence_is_ray_s_env_then_path_then_default_file(home, tmp_path):
    (home / ".ray" / "auth_token").write_text("from-file")
    named = tmp_path / "named"
    named.write_text("from-path")
    env = {"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)}
    assert find_ray_token(env) == "from-path"
    assert find_ray_token({**env, "RAY_AUTH_TOKEN": "from-env"}) == "from-env"


def test_disabled_mode_opts_out_even_with_a_token_file(home):
    (home / ".ray" / "auth_token").write_text("from-file")
    env = {"HOME": str(home), "RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": "x"}
    assert find_ray_token(env) is None
    assert find_ray_token({**env, "RAY_AUTH_MODE": "token"}) == "x"


@pytest.mark.parametrize("content", [None, "  \n"])
def test_an_unreadable_or_empty_named_file_is_an_error_not_a_fallback(home, tmp_path, content):
    (home / ".ray" / "auth_token").write_text("from-file")
    named = tmp_path / "named"
    if content is not None:
        named.write_text(content)
    with pytest.raises(RayAuthError, match="RAY_AUTH_TOKEN_PATH") as err:
        find_ray_token({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)})
    assert str(named) in str(err.value) and "\n" not in str(err.value)


def test_headers_and_refusals():
    assert auth_headers("t") == {"Authorization": "Bearer t"}
    assert auth_headers(None) == {}
    missing = explain_refusal(401, "http://ray:8265", sent_token=False)
    assert "token authentication is on" in missing and "RAY_AUTH_MODE=disabled" in missing
    wrong = explain_refusal(403, "http://ray:8265", sent_token=True)
    assert "refused Conveyor's Ray auth token" in wrong
    assert explain_refusal(200, "http://ray:8265", sent_token=True) is None
    assert explain_refusal(500, "http://ray:8265", sent_token=False) is None
