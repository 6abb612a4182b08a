"""Parse tree nodes of Go's text/template (text/template/parse/node.go).

`pos` is a character offset into the template text; `go_string()` is the node's String().
"""

from __future__ import annotations

from pyollama.golang.strconv import quote


class Node:
    __slots__ = ("pos",)

    def __init__(self, pos: int) -> None:
        self.pos = pos

    def __str__(self) -> str:
        return self.go_string()

    def go_string(self) -> str:
        """Go's Node.String(): the node written back as template text."""
        raise TypeError(type(self).__name__)


class ListNode(Node):
    __slots__ = ("nodes",)

    def __init__(self, pos: int, nodes: list[Node] | None = None) -> None:
        super().__init__(pos)
        self.nodes: list[Node] = nodes if nodes is not None else []

    def go_string(self) -> str:
        return "".join(n.go_string() for n in self.nodes)


class TextNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text

    def go_string(self) -> str:
        return self.text


class CommentNode(Node):
    __slots__ = ("text",)

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text

    def go_string(self) -> str:
        return "{{" + self.text + "}}"


class IdentifierNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident = ident

    def go_string(self) -> str:
        return self.ident


class VariableNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident: tuple[str, ...] = tuple(ident.split("."))

    def go_string(self) -> str:
        return ".".join(self.ident)


class DotNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "."


class NilNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "nil"


class FieldNode(Node):
    __slots__ = ("ident",)

    def __init__(self, pos: int, ident: str) -> None:
        super().__init__(pos)
        self.ident: tuple[str, ...] = tuple(ident[1:].split("."))

    def go_string(self) -> str:
        return "".join("." + i for i in self.ident)


class BoolNode(Node):
    __slots__ = ("value",)

    def __init__(self, pos: int, value: bool) -> None:
        super().__init__(pos)
        self.value = value

    def go_string(self) -> str:
        return "true" if self.value else "false"


class NumberNode(Node):
    __slots__ = (
        "complex_value",
        "float_value",
        "int_value",
        "is_complex",
        "is_float",
        "is_int",
        "is_uint",
        "text",
    )

    def __init__(self, pos: int, text: str) -> None:
        super().__init__(pos)
        self.text = text
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int_value = 0
        self.float_value = 0.0
        self.complex_value = 0j

    def go_string(self) -> str:
        return self.text


class StringNode(Node):
    __slots__ = ("quoted", "text")

    def __init__(self, pos: int, quoted: str, text: str) -> None:
        super().__init__(pos)
        self.quoted = quoted
        self.text = text

    def go_string(self) -> str:
        return self.quoted


class CommandNode(Node):
    __slots__ = ("args",)

    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.args: list[Node] = []

    def go_string(self) -> str:
        return " ".join("(" + a.go_string() + ")" if isinstance(a, PipeNode) else a.go_string()
                        for a in self.args)


class PipeNode(Node):
    __slots__ = ("cmds", "decl", "is_assign", "line")

    def __init__(self, pos: int, line: int) -> None:
        super().__init__(pos)
        self.line = line
        self.is_assign = False
        self.decl: list[VariableNode] = []
        self.cmds: list[CommandNode] = []

    def go_string(self) -> str:
        head = ""
        if self.decl:
            head = ", ".join(v.go_string() for v in self.decl) + " := "
        return head + " | ".join(c.go_string() for c in self.cmds)


class ChainNode(Node):
    __slots__ = ("fields", "node")

    def __init__(self, pos: int, node: Node) -> None:
        super().__init__(pos)
        self.node = node
        self.fields: list[str] = []

    def go_string(self) -> str:
        head = self.node.go_string()
        if isinstance(self.node, PipeNode):
            head = "(" + head + ")"
        return head + "".join("." + f for f in self.fields)


class ActionNode(Node):
    __slots__ = ("line", "pipe")

    def __init__(self, pos: int, line: int, pipe: PipeNode) -> None:
        super().__init__(pos)
        self.line = line
        self.pipe = pipe

    def go_string(self) -> str:
        return "{{" + self.pipe.go_string() + "}}"


class BranchNode(Node):
    __slots__ = ("else_list", "line", "list", "pipe")
    keyword = ""

    def __init__(self, pos: int, line: int, pipe: PipeNode, list_: ListNode,
                 else_list: ListNode | None) -> None:
        super().__init__(pos)
        self.line = line
        self.pipe = pipe
        self.list = list_
        self.else_list = else_list

    def go_string(self) -> str:
        s = "{{" + self.keyword + " " + self.pipe.go_string() + "}}" + self.list.go_string()
        if self.else_list is not None:
            s += "{{else}}" + self.else_list.go_string()
        return s + "{{end}}"


class IfNode(BranchNode):
    __slots__ = ()
    keyword = "if"


class RangeNode(BranchNode):
    __slots__ = ()
    keyword = "range"


class WithNode(BranchNode):
    __slots__ = ()
    keyword = "with"


class BreakNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{break}}"


class ContinueNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{continue}}"


class TemplateNode(Node):
    __slots__ = ("line", "name", "pipe")

    def __init__(self, pos: int, line: int, name: str, pipe: PipeNode | None) -> None:
        super().__init__(pos)
        self.line = line
        self.name = name
        self.pipe = pipe

    def go_string(self) -> str:
        s = "{{template " + quote(self.name)
        if self.pipe is not None:
            s += " " + self.pipe.go_string()
        return s + "}}"


class EndNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{end}}"


class ElseNode(Node):
    __slots__ = ()

    def go_string(self) -> str:
        return "{{else}}"


def is_empty_tree(n: Node | None) -> bool:
    """parse.IsEmptyTree: only whitespace text and comments."""
    if n is None or isinstance(n, CommentNode):
        return True
    if isinstance(n, ListNode):
        return all(is_empty_tree(c) for c in n.nodes)
    if isinstance(n, TextNode):
        return n.text.strip(" \t\r\n\v\f\x85\xa0") == ""
    return False
