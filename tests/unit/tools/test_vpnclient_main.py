import pytest

from tools.vpnclient.client import EXIT_USAGE
from tools.vpnclient.login import PasswordLogin
from tools.vpnclient.main import UsageError, build_parser, main, parse_config, split_server


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:443", ("127.0.0.1", 443)),
    ("vpn.example:5555", ("vpn.example", 5555)),
    ("[::1]:992", ("::1", 992)),
])
def test_split_server(text, expected):
    assert split_server(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", ":443", "h:0", "h:65536", "h:x"])
def test_split_server_rejects(text):
    with pytest.raises(UsageError):
        split_server(text)


def args(tmp_path, *extra):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\nignored second line\n")
    return ["connect", "--server", "10.0.0.1:443", "--hub", "H", "--user", "Alice",
            "--password-file", str(pw), *extra]


def test_config_from_the_command_line(tmp_path):
    cfg = parse_config(build_parser().parse_args(args(tmp_path, "--userspace", "--max-retries", "4",
                                                     "--retry-interval", "0.25", "--retry-max", "2")))
    assert (cfg.host, cfg.port, cfg.hub, cfg.username) == ("10.0.0.1", 443, "H", "Alice")
    assert cfg.hashed_password == PasswordLogin.from_plain("Alice", "s3cret").hashed_password
    assert (cfg.retry.max_retries, cfg.retry.base_s, cfg.retry.cap_s) == (4, 0.25, 2.0)


@pytest.mark.parametrize("extra", [
    [],  # neither --tap nor --userspace
    ["--tap", "t0", "--userspace"],
    ["--userspace", "--retry-interval", "0"],
    ["--userspace", "--max-retries", "-1"],
    ["--userspace", "--ip", "not-an-ip"],
])
def test_bad_command_lines_exit_2_with_one_line(tmp_path, capsys, extra):
    assert main(args(tmp_path, *extra)) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vpnclient: error: ")


def test_missing_password_file_is_a_usage_error(tmp_path, capsys):
    argv = args(tmp_path, "--userspace")
    argv[argv.index("--password-file") + 1] = str(tmp_path / "absent")
    assert main(argv) == EXIT_USAGE
    assert "cannot read --password-file" in capsys.readouterr().err
