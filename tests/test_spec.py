"""Crawl specs from dicts and files, and process config from the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shardcrawl.cli.spec_file import load_spec_file
from shardcrawl.core import urls
from shardcrawl.core.errors import ConfigError, SpecError
from shardcrawl.models import CrawlSpec
from shardcrawl.models.validation import parse_spec
from shardcrawl.temporal.config import Config

SEED = "https://example.com/"


def spec_error(data: Any) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return str(info.value)


# -- parse_spec --------------------------------------------------------------------------------


def test_parse_spec_accepts_minimal_spec_with_defaults() -> None:
    spec = parse_spec({"seeds": [SEED]})
    assert isinstance(spec, CrawlSpec)
    assert spec.seeds == [SEED]
    assert spec.max_pages == 10_000
    assert spec.max_depth == 5
    assert spec.allow_private_networks is False
    assert spec.obey_robots_txt is True


def test_parse_spec_rejects_unknown_field() -> None:
    message = spec_error({"seeds": [SEED], "max_pagez": 3})
    assert "max_pagez" in message
    assert "unknown field" in message


def test_parse_spec_rejects_negative_max_pages() -> None:
    message = spec_error({"seeds": [SEED], "max_pages": -5})
    assert "max_pages" in message
    assert "-5" in message


@pytest.mark.parametrize(
    "seed", ["ftp://example.com/file", "mailto:me@example.com", "example.com", "javascript:x()"]
)
def test_parse_spec_rejects_seed_that_is_not_http(seed: str) -> None:
    message = spec_error({"seeds": [seed]})
    assert "seeds" in message
    assert seed in message


def test_parse_spec_rejects_missing_seeds() -> None:
    assert "seeds" in spec_error({"max_pages": 3})


def test_parse_spec_rejects_empty_seeds() -> None:
    assert "seeds" in spec_error({"seeds": []})


@pytest.mark.parametrize(
    "seed",
    [
        "http://127.0.0.1:8000/",
        "http://10.0.0.7/",
        "http://192.168.1.10/admin",
        "http://localhost:8080/",
        "http://[::1]/",
    ],
)
def test_parse_spec_rejects_private_seed_without_allow_private_networks(seed: str) -> None:
    message = spec_error({"seeds": [seed]})
    assert "--allow-private-networks" in message
    assert urls.hostname(seed) in message


@pytest.mark.parametrize(
    "seed", ["http://127.0.0.1:8000/", "http://localhost/", "http://10.0.0.7/"]
)
def test_parse_spec_accepts_private_seed_with_allow_private_networks(seed: str) -> None:
    spec = parse_spec({"seeds": [seed], "allow_private_networks": True})
    assert spec.seeds == [urls.canonicalize(seed)]


@pytest.mark.parametrize(
    "domain", ["https://example.com", "http://example.com/", "example.com/path"]
)
def test_parse_spec_rejects_allowed_domain_with_scheme_or_path(domain: str) -> None:
    message = spec_error({"seeds": [SEED], "allowed_domains": [domain]})
    assert "allowed_domains" in message
    assert domain in message


def test_parse_spec_rejects_non_mapping() -> None:
    message = spec_error(["https://example.com/"])
    assert "mapping" in message
    assert "list" in message


@pytest.mark.parametrize(
    ("data", "field", "value"),
    [
        ({"seeds": [SEED], "max_pages": -5}, "max_pages", "-5"),
        ({"seeds": [SEED], "max_depth": -1}, "max_depth", "-1"),
        ({"seeds": [SEED], "concurrency_per_host": 1000}, "concurrency_per_host", "1000"),
        ({"seeds": [SEED], "delay_seconds": -2.5}, "delay_seconds", "-2.5"),
        ({"seeds": [SEED], "batch_size": 0}, "batch_size", "0"),
        ({"seeds": [SEED], "shards": 5000}, "shards", "5000"),
        ({"seeds": [SEED], "output": "ftp://bucket/x"}, "output", "ftp://bucket/x"),
        ({"seeds": [SEED], "surprise": "boo"}, "surprise", "boo"),
        ({"seeds": ["gopher://example.com/"]}, "seeds", "gopher://example.com/"),
        ({"seeds": ["http://127.0.0.1/"]}, "seeds", "127.0.0.1"),
        (
            {"seeds": [SEED], "allowed_domains": ["https://x.org"]},
            "allowed_domains",
            "https://x.org",
        ),
        (
            {
                "seeds": [SEED],
                "proxies": {
                    "routes": [{"domains": ["*"], "mode": "direct", "fetch_queue": "EU West"}]
                },
            },
            "proxies.routes.0.fetch_queue",
            "EU West",
        ),
    ],
)
def test_every_spec_error_names_field_and_value(
    data: dict[str, Any], field: str, value: str
) -> None:
    message = spec_error(data)
    assert field in message
    assert value in message


def test_spec_error_lists_every_bad_field() -> None:
    message = spec_error({"seeds": [SEED], "max_pages": 0, "max_depth": -2})
    assert "max_pages" in message and "max_depth" in message
    assert "0" in message and "-2" in message


def test_private_seed_error_names_the_seeds_field_in_a_long_spec() -> None:
    # A realistic spec file: a long user agent listed before the seeds. The problem line must
    # still say which field is wrong, like every other spec error ("field: message (got value)").
    data = {
        "user_agent": "ExampleBot/2.0 (+https://bots.example.org/about; crawler-ops@example.org)",
        "output": "s3://crawl-bucket/some/prefix",
        "seeds": ["http://127.0.0.1:8000/"],
    }
    message = spec_error(data)
    assert "seeds" in message
    assert "127.0.0.1" in message


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_spec({"seeds": [SEED], "max_pages": -5})


# -- CrawlSpec -----------------------------------------------------------------------------------


def test_seeds_are_canonicalized() -> None:
    spec = CrawlSpec(seeds=["HTTPS://Example.COM:443/a/../b?z=1&a=2#frag", " http://example.org "])
    assert spec.seeds == ["https://example.com/b?a=2&z=1", "http://example.org/"]


def test_effective_allowed_domains_default_to_seed_hosts() -> None:
    spec = CrawlSpec(
        seeds=["https://www.example.com/a", "http://example.org:8080/", "https://www.example.com/b"]
    )
    assert spec.effective_allowed_domains() == ["example.org", "www.example.com"]


def test_effective_allowed_domains_use_explicit_list() -> None:
    spec = CrawlSpec(seeds=[SEED], allowed_domains=["example.com", "example.net"])
    assert spec.effective_allowed_domains() == ["example.com", "example.net"]


def test_allowed_domains_are_normalized() -> None:
    spec = CrawlSpec(seeds=[SEED], allowed_domains=[" Example.COM. "])
    assert spec.allowed_domains == ["example.com"]


def test_allowed_domains_admit_the_seeds() -> None:
    spec = CrawlSpec(seeds=["https://www.example.com/start"], allowed_domains=["Example.com"])
    assert all(urls.in_allowed_domains(s, spec.effective_allowed_domains()) for s in spec.seeds)


def test_ipv6_allowed_domain_admits_its_own_seed() -> None:
    # An IPv6 literal is accepted as an allowed domain; it must then admit URLs on that address.
    seed = "http://[2606:4700::1111]/"
    spec = CrawlSpec(seeds=[seed], allowed_domains=["[2606:4700::1111]"])
    assert urls.in_allowed_domains(seed, spec.effective_allowed_domains())


def test_ipv6_default_allowed_domain_admits_its_own_seed() -> None:
    seed = "http://[2606:4700::1111]:8080/"
    spec = CrawlSpec(seeds=[seed])
    assert urls.in_allowed_domains(seed, spec.effective_allowed_domains())


# -- load_spec_file ------------------------------------------------------------------------------


def test_load_spec_file_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "crawl.yaml"
    path.write_text(
        "seeds:\n  - https://example.com/\nmax_pages: 20\nallowed_domains: [example.com]\n",
        encoding="utf-8",
    )
    data = load_spec_file(path)
    assert data == {
        "seeds": ["https://example.com/"],
        "max_pages": 20,
        "allowed_domains": ["example.com"],
    }
    assert parse_spec(data).max_pages == 20


def test_load_spec_file_reads_json(tmp_path: Path) -> None:
    path = tmp_path / "crawl.json"
    path.write_text(json.dumps({"seeds": [SEED], "max_depth": 2}), encoding="utf-8")
    assert load_spec_file(str(path)) == {"seeds": [SEED], "max_depth": 2}


def test_load_spec_file_empty_file_is_empty_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("", encoding="utf-8")
    assert load_spec_file(path) == {}


@pytest.mark.parametrize(
    "text", ["- https://example.com/\n- https://example.org/\n", "just a string\n", "42\n"]
)
def test_load_spec_file_rejects_non_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SpecError, match="mapping") as info:
        load_spec_file(path)
    assert "list.yaml" in str(info.value)


def test_load_spec_file_rejects_invalid_yaml_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken-spec.yaml"
    path.write_text("seeds: [https://example.com/\nmax_pages: : 3\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert "broken-spec.yaml" in str(info.value)
    assert "YAML" in str(info.value)


def test_load_spec_file_rejects_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert "nope.yaml" in str(info.value)


# -- Config --------------------------------------------------------------------------------------

_CONFIG_VARS = [
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "AWS_ENDPOINT_URL_S3",
    "SHARDCRAWL_TEMPORAL_ADDRESS",
    "SHARDCRAWL_TEMPORAL_NAMESPACE",
    "SHARDCRAWL_TASK_QUEUE",
    "SHARDCRAWL_S3_ENDPOINT_URL",
    "SHARDCRAWL_MAX_CONCURRENT_BATCHES",
    "SHARDCRAWL_LOG_LEVEL",
    "SHARDCRAWL_FETCH_QUEUES",
    "SHARDCRAWL_BIND_ADDRESS",
]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in _CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_config_defaults(clean_env: pytest.MonkeyPatch) -> None:
    config = Config.load(environ={})
    assert config.temporal_address == "localhost:7233"
    assert config.temporal_namespace == "default"
    assert config.task_queue == "shardcrawl"
    assert config.s3_endpoint_url is None


def test_config_rejects_unknown_shardcrawl_variable(clean_env: pytest.MonkeyPatch) -> None:
    env = {"SHARDCRAWL_TASK_QEUE": "crawls", "HOME": "/root"}
    with pytest.raises(ConfigError) as info:
        Config.load(environ=env)
    assert "SHARDCRAWL_TASK_QEUE" in str(info.value)
    assert "crawls" in str(info.value)


def test_config_ignores_unrelated_variables(clean_env: pytest.MonkeyPatch) -> None:
    env = {"PATH": "/usr/bin", "OTHER_SHARDCRAWL_THING": "x"}
    assert Config.load(environ=env).task_queue == "shardcrawl"


def test_config_temporal_address_alias(clean_env: pytest.MonkeyPatch) -> None:
    env = {"TEMPORAL_ADDRESS": "temporal.internal:7233", "TEMPORAL_NAMESPACE": "crawls"}
    for name, value in env.items():
        clean_env.setenv(name, value)
    config = Config.load(environ=env)
    assert config.temporal_address == "temporal.internal:7233"
    assert config.temporal_namespace == "crawls"


def test_config_prefixed_temporal_address(clean_env: pytest.MonkeyPatch) -> None:
    env = {"SHARDCRAWL_TEMPORAL_ADDRESS": "other:7233"}
    clean_env.setenv("SHARDCRAWL_TEMPORAL_ADDRESS", "other:7233")
    assert Config.load(environ=env).temporal_address == "other:7233"


def test_config_reads_prefixed_settings(clean_env: pytest.MonkeyPatch) -> None:
    env = {"SHARDCRAWL_TASK_QUEUE": "q1", "SHARDCRAWL_MAX_CONCURRENT_BATCHES": "3"}
    for name, value in env.items():
        clean_env.setenv(name, value)
    config = Config.load(environ=env)
    assert config.task_queue == "q1"
    assert config.max_concurrent_batches == 3


def test_config_error_is_a_value_error(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError):
        Config.load(environ={"SHARDCRAWL_BOGUS": "1"})


def test_url_rules_are_checked_naming_the_field_and_index() -> None:
    message = spec_error({"seeds": [SEED], "exclude": ["/ok/", "(unclosed"]})
    assert "exclude[1]" in message and "(unclosed" in message
    message = spec_error({"seeds": [SEED], "include": ["[a-"]})
    assert "include[0]" in message
    message = spec_error({"seeds": [SEED], "strip_query_params": ["utm_*", "a=b"]})
    assert "strip_query_params[1]" in message
    assert "order" in spec_error({"seeds": [SEED], "order": "random"})
    assert "max_pages_per_host" in spec_error({"seeds": [SEED], "max_pages_per_host": 0})


def test_seeds_lose_the_query_parameters_the_spec_strips() -> None:
    spec = parse_spec(
        {
            "seeds": [f"{SEED}?utm_source=x&id=3&SessionID=9"],
            "strip_query_params": ["utm_*", "sessionid"],
        }
    )
    assert spec.seeds == [f"{SEED}?id=3"]


def test_a_route_names_its_fleet_with_or_without_a_proxy() -> None:
    spec = parse_spec(
        {
            "seeds": [SEED],
            "proxies": {
                "routes": [
                    {"domains": ["eu.example"], "mode": "direct", "fetch_queue": "eu-west_1"},
                    {"domains": ["*"], "mode": "direct", "fetch_queue": "default"},
                ]
            },
        }
    )
    assert [r.fetch_queue for r in spec.proxies.routes] == ["eu-west_1", None]


def test_config_fleets_default_to_the_main_queue_and_flags_win(
    clean_env: pytest.MonkeyPatch,
) -> None:
    assert Config.load(environ={}).fleets() == ["default"]
    clean_env.setenv("SHARDCRAWL_FETCH_QUEUES", "us")
    config = Config.load(environ={}, fetch_queues="eu,default,eu", bind_address="127.0.0.9")
    assert config.fleets() == ["eu", "default"] and config.bind_address == "127.0.0.9"
    with pytest.raises(ConfigError, match="SHARDCRAWL_BIND_ADDRESS: 'eu.example' is not an IP"):
        Config.load(environ={}, bind_address="eu.example")
