from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pyollama.errors import BadRequestError
from pyollama.golang.strconv import format_float as go_float
from pyollama.store.manifest import (
    CONFIG_MEDIA_TYPE,
    MEDIA_ADAPTER,
    MEDIA_MODEL,
    MEDIA_PROJECTOR,
    Layer,
    Manifest,
)
from pyollama.store.modelfile import (
    ModelfileError,
    format_parameters,
    parse_modelfile,
    parse_parameter_value,
    render_modelfile,
)
from pyollama.store.names import ModelName
from pyollama.store.store import Store

if TYPE_CHECKING:
    from conftest import OllamaStore

INVALID_COMMAND = (
    'command must be one of "from", "license", "template", "system", "adapter", "draft", "renderer", '
    '"parser", "parameter", "message", or "requires"'
)

FULL = '''# a comment line
FROM llama3.2
parameter temperature 0.7
PARAMETER num_ctx 4096
PARAMETER stop <|start_header_id|>
PARAMETER stop "<|eot_id|>"
PARAMETER use_mmap false
Template """{{ if .System }}<|start_header_id|>system<|end_header_id|>

{{ .System }}<|eot_id|>{{ end }}"""
SYSTEM You are Mario from "super mario bros" # not a comment
ADAPTER ./lora.gguf
LICENSE MIT
LICENSE """Apache
License 2.0"""
MESSAGE user Is Toronto in Canada?
MESSAGE assistant yes
  # indented comment
'''


def test_parse_reads_every_instruction() -> None:
    mf = parse_modelfile(FULL)
    assert mf.from_ == "llama3.2"
    assert mf.parameters == {
        "temperature": 0.7,
        "num_ctx": 4096,
        "stop": ["<|start_header_id|>", "<|eot_id|>"],
        "use_mmap": False,
    }
    assert mf.template == (
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
    )
    assert mf.system == 'You are Mario from "super mario bros" # not a comment'
    assert mf.adapters == ["./lora.gguf"]
    assert mf.license == ["MIT", "Apache\nLicense 2.0"]
    assert mf.messages == [
        {"role": "user", "content": "Is Toronto in Canada?"},
        {"role": "assistant", "content": "yes"},
    ]


def test_parse_accepts_bytes_with_bom() -> None:
    assert parse_modelfile("\ufeffFROM x\n".encode()).from_ == "x"
    assert parse_modelfile("FROM x\nSYSTEM héllo\n".encode("utf-16")).system == "héllo"


def test_parse_single_quoted_value_spans_lines() -> None:
    assert parse_modelfile('FROM x\nSYSTEM "line one\nline two"\n').system == "line one\nline two"


def test_parse_last_system_and_template_win() -> None:
    mf = parse_modelfile("FROM x\nSYSTEM a\nSYSTEM b\nTEMPLATE t1\nTEMPLATE t2\n")
    assert (mf.system, mf.template) == ("b", "t2")


def test_parse_crlf_line_endings() -> None:
    mf = parse_modelfile("FROM x\r\nPARAMETER top_k 5\r\n")
    assert mf.parameters == {"top_k": 5}


def test_parse_deprecated_parameter_is_ignored_with_warning() -> None:
    mf = parse_modelfile("FROM x\nPARAMETER mirostat 1\n")
    assert mf.parameters == {}
    assert mf.warnings == ["parameter mirostat is deprecated"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM x\nFOO bar\n", f"(line 2): {INVALID_COMMAND}"),
        ("FROM1 x", f"(line 1): {INVALID_COMMAND}"),
        ("FROM x\nSYSTEM\n", f"(line 3): {INVALID_COMMAND}"),
        ("FROM x\nMESSAGE bot hi\n", '(line 2): message role must be one of "system", "user", or "assistant"'),
        ("FROM x\nMESSAGE User hi\n", '(line 2): message role must be one of "system", "user", or "assistant"'),
        ("SYSTEM hi\n", "no FROM line"),
        ("", "no FROM line"),
        ("# only a comment", "no FROM line"),
        ('FROM x\nSYSTEM """open\nstill open', "unexpected EOF"),
        ('FROM x\nSYSTEM "open', "unexpected EOF"),
        ("FROM x\nPARAMETER num-ctx 1\n", "unexpected EOF: num"),
        ("FROM x\nPARAMETER", "unexpected EOF"),
    ],
)
def test_parse_errors_use_ollama_messages(text: str, message: str) -> None:
    with pytest.raises(ModelfileError) as info:
        parse_modelfile(text)
    assert str(info.value) == message
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("key", "raw", "value"),
    [
        ("num_ctx", "4096", 4096),
        ("seed", "-1", -1),
        ("temperature", "0.7", 0.7),
        ("top_p", "1", 1.0),
        ("min_p", "1e-3", 0.001),
        ("use_mmap", "T", True),
        ("use_mmap", "0", False),
        ("stop", "<|eot_id|>", ["<|eot_id|>"]),
    ],
)
def test_parse_parameter_value_types_like_format_params(key: str, raw: str, value: object) -> None:
    assert parse_parameter_value(key, raw) == value


@pytest.mark.parametrize(
    ("key", "raw", "message"),
    [
        ("num_ctx", "4k", "invalid int value [4k]"),
        ("num_ctx", "1_000", "invalid int value [1_000]"),
        ("num_ctx", "1.5", "invalid int value [1.5]"),
        ("seed", "99999999999999999999", "invalid int value [99999999999999999999]"),
        ("temperature", "hot", "invalid float value [hot]"),
        ("temperature", "1e99", "invalid float value [1e99]"),
        ("use_mmap", "yes", "invalid bool value [yes]"),
        ("tfs_z", "1", "unknown parameter 'tfs_z'"),
        ("Temperature", "1", "unknown parameter 'Temperature'"),
    ],
)
def test_parse_parameter_value_rejects_bad_input(key: str, raw: str, message: str) -> None:
    with pytest.raises(BadRequestError) as info:
        parse_parameter_value(key, raw)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [(1.0, "1"), (0.7, "0.7"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"), (131072.0, "131072"),
     (1e-05, "1e-05"), (0.0001, "0.0001"), (1e21, "1e+21"), (-2.5, "-2.5"), (100000.0, "100000")],
)
def test_go_float_matches_go_v_verb(value: float, text: str) -> None:
    assert go_float(value) == text


def test_format_parameters_matches_go_sprintf() -> None:
    params = {"num_ctx": 4096, "stop": ["<|im_start|>", 'a"b\\c\x01é\t'], "temperature": 0.7,
              "seed": 1234567, "use_mmap": True}
    # Expected text produced by Go's fmt.Sprintf("%-30s %#v") on the JSON-decoded map.
    assert format_parameters(params) == (
        "num_ctx                        4096\n"
        'stop                           "<|im_start|>"\n'
        'stop                           "a\\"b\\\\c\\x01é\\t"\n'
        "temperature                    0.7\n"
        "seed                           1.234567e+06\n"
        "use_mmap                       true"
    )
    assert format_parameters({}) == ""


def test_render_modelfile_matches_ollama_show(ollama_store: OllamaStore) -> None:
    record = Store(ollama_store.root).load_record(ModelName.parse("pirate"))
    blob = record.model_path
    assert record.template is not None
    assert render_modelfile(record) == (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        "# FROM Pirate:latest\n"
        "\n"
        f"FROM {blob}\n"
        f'TEMPLATE "{record.template}"\n'
        "SYSTEM You are a pirate.\n"
        "PARAMETER num_ctx 4096\n"
        "PARAMETER stop <|im_start|>\n"
        "PARAMETER stop <|im_end|>\n"
        "PARAMETER temperature 0.7\n"
        'LICENSE "MIT License\n\nCopyright"\n'
        "MESSAGE user Is Toronto in Canada?\n"
        "MESSAGE assistant yes\n"
    )


def test_render_then_parse_round_trips(ollama_store: OllamaStore) -> None:
    record = Store(ollama_store.root).load_record(ModelName.parse("pirate"))
    record.system = ' leading space and "quotes"'
    record.params["seed"] = 1234567
    mf = parse_modelfile(render_modelfile(record, from_line="pirate:latest"))
    assert mf.from_ == "pirate:latest"
    assert mf.template == record.template
    assert mf.system == record.system
    assert mf.parameters == record.params
    assert mf.license == record.license
    assert mf.messages == record.messages


def test_render_lists_adapters_and_projectors(store: Store, tiny_gguf: Path) -> None:
    digest, size = store.blobs.add_file(tiny_gguf)
    a_digest, a_size = store.blobs.write_bytes(b"adapter")
    p_digest, p_size = store.blobs.write_bytes(b"projector")
    c_digest, c_size = store.blobs.write_bytes(b"{}")
    layers = [Layer(MEDIA_MODEL, digest, size), Layer(MEDIA_ADAPTER, a_digest, a_size),
              Layer(MEDIA_PROJECTOR, p_digest, p_size)]
    store.write_manifest(ModelName.parse("multi"), Manifest(Layer(CONFIG_MEDIA_TYPE, c_digest, c_size), layers))
    text = render_modelfile(store.load_record(ModelName.parse("multi")))
    body = text.split("\n\n", 1)[1].splitlines()
    assert body == [
        f"FROM {store.blobs.path(digest)}",
        f"ADAPTER {store.blobs.path(a_digest)}",
        f"FROM {store.blobs.path(p_digest)}",
    ]
