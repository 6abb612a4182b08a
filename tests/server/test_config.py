from __future__ import annotations

import math
from pathlib import Path

import pytest

from pyollama.config import Config, parse_duration, parse_host
from pyollama.errors import BadRequestError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("1.5s", 1.5),
        ("300ms", 0.3),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("0", 0.0),
        ("-1m", -60.0),
        ("+10s", 10.0),
        (".5h", 1800.0),
    ],
)
def test_parse_duration_accepts_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3600", 'time: missing unit in duration "3600"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("abc", 'time: invalid duration "abc"'),
        ("", 'time: invalid duration ""'),
        ("1h-5m", 'time: unknown unit "h-" in duration "1h-5m"'),
    ],
)
def test_parse_duration_rejects_with_go_text_when_invalid(text: str, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_duration(text)
    assert info.value.message == message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", ("http", "127.0.0.1", 11434)),
        ("0.0.0.0", ("http", "0.0.0.0", 11434)),
        ("0.0.0.0:8080", ("http", "0.0.0.0", 8080)),
        (":9000", ("http", "", 9000)),
        ("http://example.com", ("http", "example.com", 80)),
        ("https://example.com", ("https", "example.com", 443)),
        ("http://10.0.0.1:5000/path", ("http", "10.0.0.1", 5000)),
        ("[::1]:7000", ("http", "::1", 7000)),
        ("ollama.com", ("https", "ollama.com", 443)),
        ("localhost:99999", ("http", "localhost", 11434)),
        ('"127.0.0.1:1234"', ("http", "127.0.0.1", 1234)),
    ],
)
def test_parse_host_follows_ollama_rules(raw: str, expected: tuple[str, str, int]) -> None:
    assert parse_host(raw) == expected


def test_config_defaults_when_environment_is_empty() -> None:
    config = Config.from_env({"HOME": "/home/u"})
    assert (config.host, config.port) == ("127.0.0.1", 11434)
    assert config.models == Path("/home/u/.ollama/models")
    assert config.keep_alive == 300.0
    assert config.num_parallel == 4
    assert config.max_loaded_models == 3
    assert config.max_queue == 512
    assert config.context_length == 4096
    assert config.flash_attention is None
    assert config.origins == ()
    assert config.load_timeout == 300.0
    assert config.num_threads >= 1
    assert config.base_url == "http://127.0.0.1:11434"


def test_config_reads_every_knob_from_environment() -> None:
    config = Config.from_env(
        {
            "OLLAMA_HOST": "0.0.0.0:8080",
            "OLLAMA_MODELS": "/data/models",
            "OLLAMA_KEEP_ALIVE": "10m",
            "OLLAMA_NUM_PARALLEL": "8",
            "OLLAMA_MAX_LOADED_MODELS": "2",
            "OLLAMA_MAX_QUEUE": "16",
            "OLLAMA_ORIGINS": "chrome-extension://*, https://app.example.com",
            "OLLAMA_CONTEXT_LENGTH": "8192",
            "OLLAMA_FLASH_ATTENTION": "1",
            "OLLAMA_KV_CACHE_TYPE": "Q8_0",
            "OLLAMA_DEBUG": "2",
            "OLLAMA_NOPRUNE": "true",
            "OLLAMA_LOAD_TIMEOUT": "0",
            "PYOLLAMA_NUM_THREADS": "3",
            "PYOLLAMA_RPC_SERVERS": "10.0.0.2:50052,10.0.0.3:50052",
            "PYOLLAMA_API_KEYS": "k1,k2",
        }
    )
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.models == Path("/data/models")
    assert config.keep_alive == 600.0
    assert config.num_parallel == 8
    assert config.max_loaded_models == 2
    assert config.max_queue == 16
    assert config.origins == ("chrome-extension://*", "https://app.example.com")
    assert config.context_length == 8192
    assert config.flash_attention is True
    assert config.kv_cache_type == "q8_0"
    assert config.debug == 2
    assert config.noprune is True
    assert math.isinf(config.load_timeout)
    assert config.num_threads == 3
    assert config.rpc_servers == ("10.0.0.2:50052", "10.0.0.3:50052")
    assert config.api_keys == ("k1", "k2")
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.listen == "0.0.0.0:8080"


@pytest.mark.parametrize(("value", "seconds"), [("3600", 3600.0), ("-1", -1.0), ("-5m", -1.0), ("1h", 3600.0)])
def test_config_keep_alive_accepts_seconds_and_durations(value: str, seconds: float) -> None:
    assert Config.from_env({"OLLAMA_KEEP_ALIVE": value}).keep_alive == seconds


def test_config_falls_back_to_defaults_when_numbers_are_invalid() -> None:
    config = Config.from_env({"OLLAMA_NUM_PARALLEL": "many", "OLLAMA_MAX_QUEUE": "-3", "OLLAMA_KEEP_ALIVE": "soon"})
    assert config.num_parallel == 4
    assert config.max_queue == 512
    assert config.keep_alive == 300.0


@pytest.mark.parametrize(("value", "expected"), [("false", False), ("0", False), ("yes", True), ("garbage", True)])
def test_config_booleans_treat_unparseable_values_as_true(value: str, expected: bool) -> None:
    assert Config.from_env({"OLLAMA_NOPRUNE": value}).noprune is expected


def test_config_trims_quotes_and_spaces_like_ollama() -> None:
    config = Config.from_env({"OLLAMA_CONTEXT_LENGTH": " '16384' ", "OLLAMA_KEEP_ALIVE": '"1m"'})
    assert config.context_length == 16384
    assert config.keep_alive == 60.0


def test_flash_attention_zero_means_off_and_runner_process_flag() -> None:
    off = Config.from_env({"HOME": "/tmp", "OLLAMA_FLASH_ATTENTION": "0", "PYOLLAMA_RUNNER_PROCESS": "0"})
    assert off.flash_attention is False
    assert off.runner_process is False
    # models run in child processes unless told otherwise (a native crash is not the server's)
    assert Config.from_env({"HOME": "/tmp"}).runner_process is True


def test_repack_is_automatic_unless_forced() -> None:
    assert Config.from_env({"HOME": "/tmp"}).repack is None
    assert Config.from_env({"HOME": "/tmp", "PYOLLAMA_REPACK": "0"}).repack is False
    assert Config.from_env({"HOME": "/tmp", "PYOLLAMA_REPACK": "1"}).repack is True
