"""Go text/template behaviour of pyollama.templates.gotext.

Expected outputs and error texts in GO_CASES were produced by Go's own text/template (Go 1.19,
configured like Ollama: missingkey=zero plus a `json` function) on the same template and data.
Go 1.22+/1.23 additions that Ollama's Go has (range over an integer, `else with`) are tested
separately, from the Go source's documented behaviour.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from pyollama.errors import BadRequestError
from pyollama.golang import values
from pyollama.golang.values import NO_VALUE, NilPointer, Struct, Typed
from pyollama.templates.gotext import Template, TemplateError
from pyollama.templates.gotext import exec as gotext_exec

DATA: dict[str, Any] = {
    "A": "a", "S": "h\u00e9llo", "N": 42, "F": 2.5, "T": True, "FalseV": False, "Z": "", "Zero": 0, "E": [],
    "EM": {}, "Nil": None, "L": ["x", "y", "z"], "M": {"k": "v", "b": 2, "a": 1}, "Big": 1000000.0,
    "Small": 0.00001, "Whole": 3.0, "H": "<b>&\"'",
}

# (template, expected output, expected error): one of the last two is None.
GO_CASES: list[tuple[str, str | None, str | None]] = [
    # text, trimming, comments
    ('a  {{- .A -}}  b', 'aab', None),
    ('x \n\t{{- .A }}', 'xa', None),
    ('{{ .A -}}\n\n  y', 'ay', None),
    ('a {{- /* note */ -}} b', 'ab', None),
    ('{{/* multi\nline */}}x', 'x', None),
    ('{{-1}}', '-1', None),
    ('a\r\n{{- .A }}', 'aa', None),
    ('{{ .A }}}', 'a}', None),
    ('{{`{{raw}}`}}', '{{raw}}', None),
    # fields and Go printing
    ('{{ .A }}', 'a', None),
    ('{{ .M.k }}', 'v', None),
    ('{{ .Missing }}', '<no value>', None),
    ('{{ .M.missing }}', '<no value>', None),
    ('{{ .N }} {{ .F }} {{ .T }} {{ .L }} {{ .M }} {{ .E }} {{ .EM }} {{ .Nil }}', '42 2.5 true [x y z] map[a:1 b:2 k:v] [] map[] <no value>', None),
    ('{{ .Big }} {{ .Small }} {{ .Whole }}', '1e+06 1e-05 3', None),
    ('{{ .H }}', '<b>&"\'', None),
    # variables
    ('{{ $x := .A }}{{ $x }}{{ $x }}', 'aa', None),
    ('{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}', '2', None),
    ('{{ range .L }}{{ $.A }}{{ end }}', 'aaa', None),
    ('{{ with $v := .M.k }}{{ $v }}{{ . }}{{ end }}', 'vv', None),
    # range
    ('{{ range .L }}[{{ . }}]{{ end }}', '[x][y][z]', None),
    ('{{ range $i, $e := .L }}{{ $i }}:{{ $e }} {{ end }}', '0:x 1:y 2:z ', None),
    ('{{ range $k, $v := .M }}{{ $k }}={{ $v }};{{ end }}', 'a=1;b=2;k=v;', None),
    ('{{ range .E }}x{{ else }}empty{{ end }}', 'empty', None),
    ('{{ range .Missing }}x{{ else }}none{{ end }}', 'none', None),
    ('{{ range .L }}{{ if eq . "y" }}{{ continue }}{{ end }}{{ . }}{{ end }}', 'xz', None),
    ('{{ range .L }}{{ if eq . "y" }}{{ break }}{{ end }}{{ . }}{{ end }}', 'x', None),
    ('{{ range $i, $_ := .L }}{{ if eq (len (slice $.L $i)) 1 }}last={{ . }}{{ end }}{{ end }}', 'last=z', None),
    # if / else if / with
    ('{{ if eq .A "a" }}A{{ else if eq .A "b" }}B{{ else }}C{{ end }}', 'A', None),
    ('{{ if eq .A "q" }}A{{ else if eq .A "b" }}B{{ else }}C{{ end }}', 'C', None),
    ('{{ with .M }}{{ .k }}{{ else }}none{{ end }}', 'v', None),
    ('{{ with .Z }}{{ . }}{{ else }}none{{ end }}', 'none', None),
    ('{{ if .Z }}1{{ end }}{{ if .E }}2{{ end }}{{ if .Zero }}3{{ end }}{{ if .EM }}4{{ end }}{{ if .FalseV }}5{{ end }}{{ if .Nil }}6{{ end }}{{ if .Missing }}7{{ end }}.', '.', None),
    ('{{ if .A }}1{{ end }}{{ if .L }}2{{ end }}{{ if .N }}3{{ end }}{{ if .M }}4{{ end }}{{ if .T }}5{{ end }}{{ if .F }}6{{ end }}.', '123456.', None),
    # define / template / block
    ('{{ define "x" }}<{{ . }}>{{ end }}{{ template "x" .A }}{{ template "x" .N }}', '<a><42>', None),
    ('{{ block "b" .N }}[{{ . }}]{{ end }}', '[42]', None),
    ('{{ define "x" }}{{ $ }}{{ end }}{{ template "x" .L }}', '[x y z]', None),
    # functions and pipelines
    ('{{ and .A .N }}|{{ and .A .Z .N }}|{{ or .Z .Zero .A }}|{{ or .Z .Zero }}', '42||a|0', None),
    ('{{ not .A }} {{ not .Z }}', 'false true', None),
    ('{{ len .S }} {{ len .L }} {{ len .M }} {{ len .E }}', '6 3 3 0', None),
    ('{{ index .L 1 }} {{ index .M "k" }} {{ index .S 0 }} {{ index .M "nope" }}', 'y v 104 <no value>', None),
    ('{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice .S 1 3 }} {{ slice .S 0 2 }}', '[y z] [y] é h�', None),
    ('{{ eq .N 42 }} {{ eq .A "x" "y" "a" }} {{ ne .A "a" }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}', 'true true false true true true false', None),
    ('{{ print .A .N .F "s" 1 2 }}|{{ println .A 1 }}|{{ printf "%d-%s-%v-%q-%5.2f-%x-%t-%%" .N .A .L .A .F 255 .T }}', 'a42 2.5s1 2|a 1\n|42-a-[x y z]-"a"- 2.50-ff-true-%', None),
    ('{{ json .M }} {{ json .L }} {{ json .H }} {{ json .Big }} {{ json .Small }} {{ json .Nil }} {{ json .S }}', '{"a":1,"b":2,"k":"v"} ["x","y","z"] "\\u003cb\\u003e\\u0026\\"\'" 1000000 0.00001 null "héllo"', None),
    ('{{ html .H }} {{ js .H }} {{ urlquery "a b&c/é" }}', '&lt;b&gt;&amp;&#34;&#39; \\u003Cb\\u003E\\u0026\\"\\\' a+b%26c%2F%C3%A9', None),
    ('{{ .A | printf "%s!" }} {{ "xyz" | len }} {{ (len .L) | printf "%03d" }} {{ .L | len | printf "n=%d" }}', 'a! 3 003 n=3', None),
    ('{{ printf "%d" .A }}|{{ printf "%s" }}|{{ printf "%s" 1 2 }}', '%!d(string=a)|%!s(MISSING)|%!s(int=1)%!(EXTRA int=2)', None),
    ("{{ 'a' }} {{ 0x1F }} {{ 1_000 }} {{ 1e3 }} {{ 1.50 }} {{ -7 }}", '97 31 1000 1000 1.5 -7', None),
    # parse errors
    ('{{ .A } }}', None, 'template: :1: unexpected "}" in operand'),
    ('{{ if .A }}', None, 'template: :1: unexpected EOF'),
    ('{{ end }}', None, 'template: :1: unexpected {{end}}'),
    ('{{ foo }}', None, 'template: :1: function "foo" not defined'),
    ('{{ $y }}', None, 'template: :1: undefined variable "$y"'),
    ('{{ break }}', None, 'template: :1: {{break}} outside {{range}}'),
    ('{{ .A', None, 'template: :1: unclosed action'),
    ('{{/* x', None, 'template: :1: unclosed comment'),
    ('a\nb\n{{ .A | }}', 'a\nb\na', None),
    ('{{ 1 | 2 }}', None, 'template: :1: non executable command in pipeline stage 2'),
    ('{{ if }}', None, 'template: :1: missing value for if'),
    ('{{ range $i, $j, $k := .L }}{{ end }}', None, 'template: :1: too many declarations in range'),
    ('{{ define "a" }}1{{ end }}{{ define "a" }}2{{ end }}', None, 'template: :1: template: multiple definition of template "a"'),
    ('{{ "unterminated }}', None, 'template: :1: unterminated quoted string'),
    ('{{ .A #}}', None, 'template: :1: unexpected "#" in operand'),
    ('{{ else }}', None, 'template: :1: unexpected {{else}}'),
    ('{{ template x }}', None, 'template: :1: unexpected "x" in template clause'),
    ('line1\n{{ if .A }}\n{{ end }}\n{{ end }}', None, 'template: :4: unexpected {{end}}'),
    # execution errors
    ('{{ template "zz" }}', None, 'template: :1:12: executing "" at <{{template "zz"}}>: template "zz" not defined'),
    ('{{ .A.B }}', None, 'template: :1:5: executing "" at <.A.B>: can\'t evaluate field B in type interface {}'),
    ('{{ index .L 10 }}', None, 'template: :1:3: executing "" at <index .L 10>: error calling index: index out of range: 10'),
    ('{{ eq 1 "a" }}', None, 'template: :1:3: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'),
    ('{{ len .N }}', None, 'template: :1:3: executing "" at <len .N>: error calling len: len of type int'),
    ('{{ nil }}', None, 'template: :1:3: executing "" at <nil>: nil is not a command'),
    ('x\n  {{ .Missing.X }}', None, 'template: :2:13: executing "" at <.Missing.X>: nil pointer evaluating interface {}.X'),
    ('{{ .A 1 }}', None, 'template: :1:3: executing "" at <.A>: A is not a method but has arguments'),
    ('{{ printf }}', None, 'template: :1:3: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0'),
    ('{{ json 1 2 }}', None, 'template: :1:3: executing "" at <json>: wrong number of args for json: want 1 got 2'),
    ('{{ range .A }}{{ end }}', None, 'template: :1:9: executing "" at <.A>: range can\'t iterate over a'),
    ('{{ lt true false }}', None, 'template: :1:3: executing "" at <lt true false>: error calling lt: invalid type for comparison'),
]


def _render(text: str, data: Any = DATA) -> str:
    return Template.parse(text).execute(data)


@pytest.mark.parametrize(("text", "expected", "error"), GO_CASES, ids=[c[0][:40] for c in GO_CASES])
def test_render_matches_go_text_template(text: str, expected: str | None, error: str | None) -> None:
    if error is None:
        assert _render(text) == expected
    else:
        with pytest.raises(TemplateError) as info:
            _render(text)
        assert str(info.value) == error


def test_template_error_is_bad_request_with_status_400() -> None:
    with pytest.raises(BadRequestError) as info:
        Template.parse("{{ .A } }}")
    assert info.value.status == 400
    assert isinstance(info.value, TemplateError)


def test_parse_returns_cached_template_for_same_text() -> None:
    text = "{{ .Prompt }} cached"
    assert Template.parse(text) is Template.parse(text)
    assert str(Template.parse(text)) == text


def test_missing_key_prints_no_value_in_zero_mode() -> None:
    # Ollama passes map[string]any; with missingkey=zero the zero value is a nil interface, which
    # the pipeline unwraps to an invalid value, printed `<no value>` (Go issue 24963).
    assert _render("[{{ .Prompt }}]", {"System": "s"}) == "[<no value>]"


def test_missing_key_chain_differs_between_zero_and_default_mode() -> None:
    zero = Template.parse("{{ .X.Y }}")
    with pytest.raises(TemplateError, match=r"nil pointer evaluating interface \{\}\.Y"):
        zero.execute({})
    # Ollama's last legacy turn runs a template built with AddParseTree: default missingkey.
    assert zero.derive(zero.root, bare=True).execute({}) == "<no value>"


def test_range_over_integer_counts_from_zero_go122() -> None:
    assert _render("{{ range 3 }}{{ . }}{{ end }}|{{ range $i := 2 }}{{ $i }}{{ end }}|{{ range 0 }}x{{ else }}none{{ end }}") \
        == "012|01|none"


def test_range_over_integer_rejects_two_variables_go122() -> None:
    with pytest.raises(TemplateError, match="can't use 3 to iterate over more than one variable"):
        _render("{{ range $i, $e := 3 }}{{ end }}")


def test_else_with_chains_like_else_if_go123() -> None:
    text = "{{ with .Z }}z{{ else with .A }}[{{ . }}]{{ else }}none{{ end }}"
    assert _render(text) == "[a]"
    assert _render(text, {"Z": "", "A": ""}) == "none"


def test_current_date_renders_today_and_ignores_format() -> None:
    today = datetime.date.today().isoformat()
    assert _render('{{ currentDate }}|{{ currentDate "Jan 2" }}') in (f"{today}|{today}",)


def test_sliced_multibyte_character_rejoins_into_valid_text() -> None:
    # `slice` cuts bytes like Go; halves written back to back make the character again.
    assert _render("{{ slice .S 0 2 }}{{ slice .S 2 }}") == "h\u00e9llo"
    assert _render("{{ slice .S 0 2 }}") == "h\ufffd"


def test_struct_fields_resolve_and_unknown_field_names_go_type() -> None:
    msg = Struct("*template.templateMessage", {"Role": "user", "Content": "hi"}, pointer=True)
    assert _render("{{ range .Messages }}{{ .Role }}:{{ .Content }} {{ . }}{{ end }}", {"Messages": [msg]}) \
        == "user:hi {user hi}"
    with pytest.raises(TemplateError) as info:
        _render("{{ range .Messages }}{{ .Contnet }}{{ end }}", {"Messages": [msg]})
    assert str(info.value) == ('template: :1:24: executing "" at <.Contnet>: '
                               "can't evaluate field Contnet in type *template.templateMessage")


def test_typed_value_prints_with_string_method_and_marshals_separately() -> None:
    args = Typed("template.templateArgs", {"b": 2.0, "a": "<x>"}, string=lambda: "STRING")
    out = _render("{{ .V }}|{{ json .V }}|{{ range $k, $v := .V }}{{ $k }}={{ $v }};{{ end }}|{{ len .V }}", {"V": args})
    assert out == 'STRING|{"a":"\\u003cx\\u003e","b":2}|a=<x>;b=2;|2'


def test_json_of_struct_follows_omitempty_rules() -> None:
    s = Struct("T", {"A": "", "B": {}, "C": None, "D": 0.0, "E": NilPointer("*X")},
               json_fields=(("a", "A", values.OMIT_EMPTY), ("b", "B", values.OMIT_NIL),
                            ("c", "C", values.OMIT_NIL), ("d", "D", values.OMIT_NEVER),
                            ("e", "E", values.OMIT_NIL)))
    assert _render("{{ json .S }}", {"S": s}) == '{"b":{},"d":0}'


def test_nil_pointer_is_false_and_prints_nil() -> None:
    assert _render("{{ if .P }}yes{{ else }}no{{ end }} {{ .P }}", {"P": NilPointer("*api.ToolPropertiesMap")}) \
        == "no <nil>"


@pytest.mark.parametrize(("value", "printed", "as_json"), [
    (1000000.0, "1e+06", "1000000"),
    (123456.0, "123456", "123456"),
    (1234567.0, "1.234567e+06", "1234567"),
    (0.1, "0.1", "0.1"),
    (0.0001, "0.0001", "0.0001"),
    (0.0000001, "1e-07", "1e-7"),
    (1e21, "1e+21", "1e+21"),
    (-2.5, "-2.5", "-2.5"),
    (3.0, "3", "3"),
])
def test_float_prints_like_go_fmt_and_encoding_json(value: float, printed: str, as_json: str) -> None:
    assert _render("{{ .V }}|{{ json .V }}", {"V": value}) == f"{printed}|{as_json}"


def test_json_of_nan_is_empty_like_ollama_ignoring_marshal_error() -> None:
    assert _render("[{{ json .V }}]", {"V": float("nan")}) == "[]"


def test_json_escapes_html_and_line_separators_like_go() -> None:
    assert _render("{{ json .V }}", {"V": "<a>&\u2028\b\f\x01\u00e9"}) \
        == '"\\u003ca\\u003e\\u0026\\u2028\\b\\f\\u0001\u00e9"'


def test_runaway_template_stops_with_error_instead_of_hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gotext_exec, "MAX_STEPS", 5000)
    with pytest.raises(TemplateError, match="execution stopped after 5000 steps"):
        _render("{{ range 1000 }}{{ range 1000 }}x{{ end }}{{ end }}")


def test_output_ceiling_stops_huge_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gotext_exec, "MAX_OUTPUT_CHARS", 1000)
    with pytest.raises(TemplateError, match="output exceeds 1000 characters"):
        _render("{{ range 100 }}0123456789012345{{ end }}")


def test_recursive_template_stops_at_depth_limit() -> None:
    with pytest.raises(TemplateError, match=r"exceeded maximum template depth \(100\)"):
        _render('{{ define "r" }}x{{ template "r" . }}{{ end }}{{ template "r" . }}')


def test_deeply_nested_template_fails_cleanly() -> None:
    text = "{{ if 1 }}" * 2000 + "x" + "{{ end }}" * 2000
    with pytest.raises(TemplateError):
        Template.parse(text).execute({})


def test_parse_error_reports_line_of_offending_token() -> None:
    with pytest.raises(TemplateError) as info:
        Template.parse("line one\nline two {{ .A }}\n{{ .B | 3 }}")
    assert str(info.value) == "template: :3: non executable command in pipeline stage 2"


def test_execution_error_reports_byte_column_after_multibyte_text() -> None:
    with pytest.raises(TemplateError) as info:
        _render("\u00e9\u00e9{{ .A.B }}")
    # Go counts bytes, and a field chain sits at its last segment: 2x2 bytes + "{{ .A" puts `.B` at 9.
    assert str(info.value).startswith("template: :1:9: executing")


def test_no_value_constant_is_what_missing_keys_yield_in_default_mode() -> None:
    t = Template.parse("{{ .Missing }}")
    assert t.derive(t.root, bare=True).execute({}) == "<no value>"
    assert repr(NO_VALUE) == "NO_VALUE"


def test_nil_data_behaves_like_go_execute_with_nil() -> None:
    assert Template.parse("[{{ .X }}][{{ . }}]").execute(None) == "[<no value>][<no value>]"
