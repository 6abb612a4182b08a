"""A parsed template as Ollama configures it (text/template's template.go, Ollama's template.go).

Parsed templates are immutable and shared between threads; `Template.parse` caches them by
text. Execution keeps all its state in a per-call `exec.State`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pyollama.errors import BadRequestError
from pyollama.golang.values import NO_VALUE
from pyollama.templates.gotext.exec import Break, Continue, ExecError, State
from pyollama.templates.gotext.funcs import ALL_FUNC_NAMES, BUILTINS, OLLAMA_FUNCS, Func
from pyollama.templates.gotext.node import (
    ActionNode,
    BranchNode,
    FieldNode,
    ListNode,
    Node,
    PipeNode,
    TemplateNode,
    VariableNode,
)
from pyollama.templates.gotext.parse import ParseError, parse_trees


class TemplateError(BadRequestError):
    """A template that does not parse or fails while executing; the message is Go's."""


class Template:
    """A parsed template: its main tree plus the `define`d and `block` trees it carries.

    Configured like Ollama's: `missingkey=zero` and Ollama's functions on top of Go's builtins.
    """

    __slots__ = ("__weakref__", "funcs", "missingkey", "name", "root", "source", "templates")

    def __init__(self, source: str, name: str, root: ListNode, templates: Mapping[str, ListNode], *,
                 missingkey: str = "zero", funcs: Mapping[str, Func] | None = None) -> None:
        self.source = source
        self.name = name
        self.root = root
        self.templates = templates
        self.missingkey = missingkey
        self.funcs: Mapping[str, Func] = funcs if funcs is not None else {**BUILTINS, **OLLAMA_FUNCS}

    @staticmethod
    def parse(text: str, name: str = "") -> Template:
        """Parse template text (cached by text: templates are rendered per request)."""
        return _parse_cached(text, name)

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Template({self.source[:40]!r}...)" if len(self.source) > 40 else f"Template({self.source!r})"

    def derive(self, root: ListNode, *, bare: bool = False) -> Template:
        """The same template with another main tree.

        `bare` builds what Go's `template.New("").AddParseTree("", tree)` gives: no `define`d
        templates, no custom functions and the default `missingkey` (Ollama renders the last
        legacy turn that way).
        """
        if bare:
            return Template(self.source, self.name, root, {self.name: root}, missingkey="default",
                            funcs=BUILTINS)
        templates = dict(self.templates)
        templates[self.name] = root
        return Template(self.source, self.name, root, templates, missingkey=self.missingkey, funcs=self.funcs)

    def execute(self, data: Any) -> str:
        """Run the template over `data` (usually a Mapping); raises TemplateError like Go's errors."""
        if data is None:
            data = NO_VALUE  # reflect.ValueOf(nil) is the invalid value
        state = State(self, self.name, data)
        try:
            state.walk(data, self.root)
        except ExecError as e:
            raise TemplateError(str(e)) from None
        except (Break, Continue):  # unreachable: the parser rejects break/continue outside range
            pass
        except RecursionError:
            raise TemplateError(f"template: {self.name}: template is nested too deeply") from None
        out = "".join(state.out)
        if _has_surrogates(out):
            # A `slice` cut through a UTF-8 sequence: join the bytes back, then replace what stays broken.
            out = out.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return out

    def error_context(self, node: Node) -> tuple[str, str]:
        """parse.Tree.ErrorContext: `name:line:byte-column` and the node's text."""
        text = self.source[:node.pos]
        line = 1 + text.count("\n")
        last_nl = text.rfind("\n")
        col_text = text if last_nl < 0 else text[last_nl + 1:]
        col = len(col_text.encode("utf-8", "surrogateescape"))
        return f"{self.name}:{line}:{col}", node.go_string()

    def walk_nodes(self) -> Iterator[tuple[str, ListNode]]:
        """(name, root) of the main tree and of every associated template."""
        yield from self.templates.items()


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogates(s: str) -> bool:
    return _SURROGATE.search(s) is not None


@functools.lru_cache(maxsize=256)
def _parse_cached(text: str, name: str) -> Template:
    try:
        trees = parse_trees(text, name, ALL_FUNC_NAMES)
    except ParseError as e:
        raise TemplateError(str(e)) from None
    except RecursionError:
        raise TemplateError(f"template: {name}: template is nested too deeply") from None
    root = trees.get(name) or ListNode(0)
    return Template(text, name, root, trees)


def identifiers(n: Node | None) -> list[str]:
    """Ollama's template.Identifiers: field and variable names a tree refers to (in order).

    Raises TemplateError for a `{{template "x"}}` without a pipeline, as Ollama does.
    """
    if n is None:
        return []
    if isinstance(n, ListNode):
        out: list[str] = []
        for c in n.nodes:
            out.extend(identifiers(c))
        return out
    if isinstance(n, TemplateNode):
        if n.pipe is None:
            raise TemplateError("undefined template specified")
        return identifiers(n.pipe)
    if isinstance(n, ActionNode):
        return identifiers(n.pipe)
    if isinstance(n, BranchNode):
        out = identifiers(n.pipe)
        out.extend(identifiers(n.list))
        if n.else_list is not None:
            out.extend(identifiers(n.else_list))
        return out
    if isinstance(n, PipeNode):
        out = []
        for c in n.cmds:
            for a in c.args:
                out.extend(identifiers(a))
        return out
    if isinstance(n, (FieldNode, VariableNode)):
        return list(n.ident)
    return []
