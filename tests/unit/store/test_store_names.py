from __future__ import annotations

import pytest

from pyollama.errors import BadRequestError
from pyollama.store.names import ModelName


@pytest.mark.parametrize(
    ("raw", "full", "display"),
    [
        ("llama3.2", "registry.ollama.ai/library/llama3.2:latest", "llama3.2:latest"),
        ("llama3.2:1b", "registry.ollama.ai/library/llama3.2:1b", "llama3.2:1b"),
        ("jmorgan/mario", "registry.ollama.ai/jmorgan/mario:latest", "jmorgan/mario:latest"),
        ("localhost:5000/ns/phi:q4", "localhost:5000/ns/phi:q4", "localhost:5000/ns/phi:q4"),
        ("localhost:5000/ns/phi", "localhost:5000/ns/phi:latest", "localhost:5000/ns/phi:latest"),
        ("registry.ollama.ai/library/m:t", "registry.ollama.ai/library/m:t", "m:t"),
        ("_why/_the/_lucky:_stiff", "_why/_the/_lucky:_stiff", "_why/_the/_lucky:_stiff"),
        ("host:https/namespace/model:tag", "host:https/namespace/model:tag", "host:https/namespace/model:tag"),
    ],
)
def test_parse_applies_defaults_when_parts_are_missing(raw: str, full: str, display: str) -> None:
    name = ModelName.parse(raw)
    assert name.full == full
    assert name.display == display
    assert str(name) == full


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "bad name!",
        "a/b/c/d",
        "mm:",
        "//mm",
        "@t",
        "m@d",
        "-hh/nn/mm:tt",
        "host/name:space/model:tag",
        "localhost:5000/phi",
        "ns.dot/model",
        "/m",
        "m" * 81,
        "ns/" + "x:" + "t" * 81,
        "ftp://host/ns/m",
        "héllo",
    ],
)
def test_parse_rejects_invalid_name(raw: str) -> None:
    with pytest.raises(BadRequestError, match="^invalid model name$"):
        ModelName.parse(raw)


def test_parse_keeps_scheme_when_given() -> None:
    name = ModelName.parse("http://localhost:5000/ns/m:t")
    assert name.scheme == "http"
    assert name.host == "localhost:5000"
    assert name.base_url == "http://localhost:5000"
    assert ModelName.parse("ns/m").scheme == "https"


def test_parts_are_exposed_for_paths_and_registry() -> None:
    name = ModelName.parse("myns/Model:v1")
    assert name.manifest_parts == ("registry.ollama.ai", "myns", "Model", "v1")
    assert name.repository == "myns/Model"


def test_equal_fold_ignores_case_only() -> None:
    assert ModelName.parse("Llama3.2:Latest").equal_fold(ModelName.parse("llama3.2"))
    assert not ModelName.parse("llama3.2:1b").equal_fold(ModelName.parse("llama3.2"))


def test_from_parts_rejects_invalid_part() -> None:
    assert ModelName.from_parts("h", "n", "m", "t").display == "h/n/m:t"
    with pytest.raises(BadRequestError):
        ModelName.from_parts("h", "n.x", "m", "t")
