"""Go's text/template, as Ollama configures it, written in Python.

Ollama renders prompts with `template.New("").Option("missingkey=zero").Funcs(...)`
(template/template.go). This package is a port of the parts of Go's text/template
that such templates can reach, one module per Go file: `lex` (lex.go), `node`
(parse/node.go), `parse` (parse/parse.go, including `define`, `block`, `template`,
`break`, `continue`, `else if`, `else with`), `exec` (exec.go), `funcs` (funcs.go:
Go's builtins plus Ollama's `json`, `currentDate`, `yesterdayDate` and
`toTypeScriptType`) and `template` (the Template type). Behaviour follows Go 1.22+
(the Go Ollama ships with), down to error texts such as
`template: :1: unexpected "}" in operand` and to the way values print
(`[a b]`, `map[k:v]`, `1e+06`, `<no value>`); the printing and JSON rules
themselves are `pyollama.golang`'s.

Data is made of the Python shapes of Go values in `pyollama.golang.values`
(`Struct`, `Typed`, `NilPointer` for what Python has no native shape for).
"""

from pyollama.templates.gotext.node import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    Node,
    PipeNode,
    RangeNode,
    TemplateNode,
    TextNode,
    WithNode,
)
from pyollama.templates.gotext.template import Template, TemplateError, identifiers

__all__ = [
    "ActionNode",
    "BranchNode",
    "CommandNode",
    "FieldNode",
    "IfNode",
    "ListNode",
    "Node",
    "PipeNode",
    "RangeNode",
    "Template",
    "TemplateError",
    "TemplateNode",
    "TextNode",
    "WithNode",
    "identifiers",
]
