"""The parser of Go's text/template (text/template/parse/parse.go)."""

from __future__ import annotations

import math

from pyollama.golang.strconv import NumError, parse_float, parse_int, quote, unquote, unquote_char
from pyollama.templates.gotext.lex import (
    I_ASSIGN,
    I_BLOCK,
    I_BOOL,
    I_BREAK,
    I_CHAR,
    I_CHAR_CONSTANT,
    I_COMMENT,
    I_COMPLEX,
    I_CONTINUE,
    I_DECLARE,
    I_DEFINE,
    I_DOT,
    I_ELSE,
    I_END,
    I_EOF,
    I_ERROR,
    I_FIELD,
    I_IDENTIFIER,
    I_IF,
    I_LEFT_DELIM,
    I_LEFT_PAREN,
    I_NIL,
    I_NUMBER,
    I_PIPE,
    I_RANGE,
    I_RAW_STRING,
    I_RIGHT_DELIM,
    I_RIGHT_PAREN,
    I_SPACE,
    I_STRING,
    I_TEMPLATE,
    I_TEXT,
    I_VARIABLE,
    I_WITH,
    Item,
    Lexer,
)
from pyollama.templates.gotext.node import (
    ActionNode,
    BoolNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
    ElseNode,
    EndNode,
    FieldNode,
    IdentifierNode,
    IfNode,
    ListNode,
    NilNode,
    Node,
    NumberNode,
    PipeNode,
    RangeNode,
    StringNode,
    TemplateNode,
    TextNode,
    VariableNode,
    WithNode,
    is_empty_tree,
)


class ParseError(Exception):
    pass


class Parser:
    """One tree's parser; `define` and `block` bodies get their own Parser over the shared item list."""

    def __init__(self, name: str, items: list[Item], cursor: list[int], tree_set: dict[str, ListNode],
                 funcs: frozenset[str], parse_name: str) -> None:
        self.name = name
        self.parse_name = parse_name
        self.items = items
        self.cursor = cursor  # shared [index, furthest index read] between nested parsers
        self.tree_set = tree_set
        self.funcs = funcs
        self.vars: list[str] = ["$"]
        self.action_line = 0
        self.range_depth = 0
        self.root: ListNode | None = None

    # Token stream --------------------------------------------------------------------------------

    def next(self) -> Item:
        i = self.cursor[0]
        item = self.items[min(i, len(self.items) - 1)]
        self.cursor[0] = i + 1
        self.cursor[1] = max(self.cursor[1], i)
        return item

    def backup(self, n: int = 1) -> None:
        self.cursor[0] -= n

    def mark(self) -> int:
        return self.cursor[0]

    def reset(self, mark: int) -> None:
        self.cursor[0] = mark

    def peek(self) -> Item:
        item = self.next()
        self.backup()
        return item

    def next_non_space(self) -> Item:
        while True:
            item = self.next()
            if item.typ != I_SPACE:
                return item

    def peek_non_space(self) -> Item:
        item = self.next_non_space()
        self.backup()
        return item

    # Errors ----------------------------------------------------------------------------------------

    def errorf(self, msg: str) -> None:
        line = self.items[min(self.cursor[1], len(self.items) - 1)].line
        raise ParseError(f"template: {self.parse_name}:{line}: {msg}")

    def unexpected(self, item: Item, context: str) -> None:
        if item.typ == I_ERROR:
            extra = ""
            if self.action_line != 0 and self.action_line != item.line:
                extra = f" in action started at {self.parse_name}:{self.action_line}"
                if item.val.endswith(" action"):
                    extra = extra[len(" in action"):]
            self.errorf(f"{item}{extra}")
        self.errorf(f"unexpected {item} in {context}")

    def expect(self, typ: int, context: str) -> Item:
        item = self.next_non_space()
        if item.typ != typ:
            self.unexpected(item, context)
        return item

    # Trees -----------------------------------------------------------------------------------------

    def parse(self) -> None:
        self.root = ListNode(self.peek().pos)
        while self.peek().typ != I_EOF:
            if self.peek().typ == I_LEFT_DELIM:
                mark = self.mark()
                self.next()
                if self.next_non_space().typ == I_DEFINE:
                    sub = Parser("definition", self.items, self.cursor, self.tree_set, self.funcs,
                                  self.parse_name)
                    sub.parse_definition()
                    continue
                self.reset(mark)
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                self.errorf(f"unexpected {n.go_string()}")
            self.root.nodes.append(n)
        self.add()

    def add(self) -> None:
        existing = self.tree_set.get(self.name)
        if existing is None or is_empty_tree(existing):
            assert self.root is not None
            self.tree_set[self.name] = self.root
            return
        if not is_empty_tree(self.root):
            self.errorf(f"template: multiple definition of template {quote(self.name)}")

    def parse_definition(self) -> None:
        context = "define clause"
        item = self.next_non_space()
        if item.typ not in (I_STRING, I_RAW_STRING):
            self.unexpected(item, context)
        self.name = self._unquote(item.val)
        self.expect(I_RIGHT_DELIM, context)
        self.root, end = self.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end.go_string()} in {context}")
        self.add()

    def item_list(self) -> tuple[ListNode, Node]:
        lst = ListNode(self.peek_non_space().pos)
        while self.peek_non_space().typ != I_EOF:
            n = self.text_or_action()
            if isinstance(n, (EndNode, ElseNode)):
                return lst, n
            lst.nodes.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError("unreachable")

    def text_or_action(self) -> Node:
        item = self.next_non_space()
        if item.typ == I_TEXT:
            return TextNode(item.pos, item.val)
        if item.typ == I_LEFT_DELIM:
            self.action_line = item.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        if item.typ == I_COMMENT:
            return CommentNode(item.pos, item.val)
        self.unexpected(item, "input")
        raise AssertionError("unreachable")

    def action(self) -> Node:
        item = self.next_non_space()
        typ = item.typ
        if typ == I_BLOCK:
            return self.block_control()
        if typ == I_BREAK:
            return self.break_control(item, BreakNode, "{{break}}")
        if typ == I_CONTINUE:
            return self.break_control(item, ContinueNode, "{{continue}}")
        if typ == I_ELSE:
            return self.else_control()
        if typ == I_END:
            return EndNode(self.expect(I_RIGHT_DELIM, "end").pos)
        if typ == I_IF:
            return IfNode(*self.parse_control("if"))
        if typ == I_RANGE:
            return RangeNode(*self.parse_control("range"))
        if typ == I_TEMPLATE:
            return self.template_control()
        if typ == I_WITH:
            return WithNode(*self.parse_control("with"))
        self.backup()
        item = self.peek()
        return ActionNode(item.pos, item.line, self.pipeline("command", I_RIGHT_DELIM))

    def break_control(self, item: Item, cls: type[Node], context: str) -> Node:
        token = self.next_non_space()
        if token.typ != I_RIGHT_DELIM:
            self.unexpected(token, context)
        if self.range_depth == 0:
            self.errorf(f"{context} outside {{{{range}}}}")
        return cls(item.pos)

    def pipeline(self, context: str, end: int) -> PipeNode:
        token = self.peek_non_space()
        pipe = PipeNode(token.pos, token.line)
        while True:  # declarations: `$x :=`, `$x =`, `$i, $e :=` (range only)
            v = self.peek_non_space()
            if v.typ != I_VARIABLE:
                break
            mark = self.mark()
            self.next_non_space()
            nxt = self.peek_non_space()
            if nxt.typ in (I_ASSIGN, I_DECLARE):
                pipe.is_assign = nxt.typ == I_ASSIGN
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.typ == I_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(VariableNode(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (I_VARIABLE, I_RIGHT_DELIM, I_RIGHT_PAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            self.reset(mark)
            break
        while True:
            item = self.next_non_space()
            if item.typ == end:
                self.check_pipeline(pipe, context)
                return pipe
            if item.typ in (I_BOOL, I_CHAR_CONSTANT, I_COMPLEX, I_DOT, I_FIELD, I_IDENTIFIER, I_NUMBER,
                            I_NIL, I_RAW_STRING, I_STRING, I_VARIABLE, I_LEFT_PAREN):
                self.backup()
                pipe.cmds.append(self.command())
            else:
                self.unexpected(item, context)

    def check_pipeline(self, pipe: PipeNode, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (BoolNode, DotNode, NilNode, NumberNode, StringNode)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def parse_control(self, context: str) -> tuple[int, int, PipeNode, ListNode, ListNode | None]:
        n_vars = len(self.vars)
        try:
            pipe = self.pipeline(context, I_RIGHT_DELIM)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list: ListNode | None = None
            if isinstance(nxt, ElseNode):
                # `{{else if x}}` / `{{else with x}}` are `{{else}}{{if x}}...{{end}}` with the end implied.
                if context == "if" and self.peek().typ == I_IF:
                    self.next()
                    else_list = ListNode(nxt.pos, [IfNode(*self.parse_control("if"))])
                elif context == "with" and self.peek().typ == I_WITH:
                    self.next()
                    else_list = ListNode(nxt.pos, [WithNode(*self.parse_control("with"))])
                else:
                    else_list, nxt = self.item_list()
                    if not isinstance(nxt, EndNode):
                        self.errorf(f"expected end; found {nxt.go_string()}")
            return pipe.pos, pipe.line, pipe, lst, else_list
        finally:
            del self.vars[n_vars:]

    def else_control(self) -> Node:
        peek = self.peek_non_space()
        if peek.typ in (I_IF, I_WITH):
            return ElseNode(peek.pos)
        return ElseNode(self.expect(I_RIGHT_DELIM, "else").pos)

    def block_control(self) -> Node:
        context = "block clause"
        item = self.next_non_space()
        name = self.parse_template_name(item, context)
        pipe = self.pipeline(context, I_RIGHT_DELIM)
        block = Parser(name, self.items, self.cursor, self.tree_set, self.funcs, self.parse_name)
        block.root, end = block.item_list()
        if not isinstance(end, EndNode):
            self.errorf(f"unexpected {end.go_string()} in {context}")
        block.add()
        return TemplateNode(item.pos, item.line, name, pipe)

    def template_control(self) -> Node:
        context = "template clause"
        item = self.next_non_space()
        name = self.parse_template_name(item, context)
        pipe: PipeNode | None = None
        if self.next_non_space().typ != I_RIGHT_DELIM:
            self.backup()
            pipe = self.pipeline(context, I_RIGHT_DELIM)
        return TemplateNode(item.pos, item.line, name, pipe)

    def parse_template_name(self, item: Item, context: str) -> str:
        if item.typ in (I_STRING, I_RAW_STRING):
            return self._unquote(item.val)
        self.unexpected(item, context)
        raise AssertionError("unreachable")

    def _unquote(self, quoted: str) -> str:
        try:
            return unquote(quoted)
        except NumError:
            self.errorf("invalid syntax")
            raise AssertionError("unreachable") from None

    def command(self) -> CommandNode:
        cmd = CommandNode(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            item = self.next()
            if item.typ == I_SPACE:
                continue
            if item.typ in (I_RIGHT_DELIM, I_RIGHT_PAREN):
                self.backup()
            elif item.typ != I_PIPE:
                self.unexpected(item, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == I_FIELD:
            chain = ChainNode(self.peek().pos, node)
            while self.peek().typ == I_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, FieldNode):
                return FieldNode(chain.pos, chain.go_string())
            if isinstance(node, VariableNode):
                return VariableNode(chain.pos, chain.go_string())
            if isinstance(node, (BoolNode, StringNode, NumberNode, NilNode, DotNode)):
                self.errorf(f"unexpected . after term {quote(node.go_string())}")
            return chain
        return node

    def term(self) -> Node | None:
        item = self.next_non_space()
        typ = item.typ
        if typ == I_IDENTIFIER:
            if item.val not in self.funcs:
                self.errorf(f"function {quote(item.val)} not defined")
            return IdentifierNode(item.pos, item.val)
        if typ == I_DOT:
            return DotNode(item.pos)
        if typ == I_NIL:
            return NilNode(item.pos)
        if typ == I_VARIABLE:
            return self.use_var(item.pos, item.val)
        if typ == I_FIELD:
            return FieldNode(item.pos, item.val)
        if typ == I_BOOL:
            return BoolNode(item.pos, item.val == "true")
        if typ in (I_CHAR_CONSTANT, I_COMPLEX, I_NUMBER):
            return self.new_number(item)
        if typ == I_LEFT_PAREN:
            return self.pipeline("parenthesized pipeline", I_RIGHT_PAREN)
        if typ in (I_STRING, I_RAW_STRING):
            return StringNode(item.pos, item.val, self._unquote(item.val))
        self.backup()
        return None

    def use_var(self, pos: int, name: str) -> VariableNode:
        v = VariableNode(pos, name)
        if v.ident[0] not in self.vars:
            self.errorf(f"undefined variable {quote(v.ident[0])}")
        return v

    def new_number(self, item: Item) -> NumberNode:
        text = item.val
        n = NumberNode(item.pos, text)
        if item.typ == I_CHAR_CONSTANT:
            try:
                code, tail = unquote_char(text[1:], "'")
            except NumError:
                self.errorf("invalid syntax")
            if tail != "'":
                self.errorf(f"malformed character constant: {text}")
            n.is_int = n.is_uint = n.is_float = True
            n.int_value, n.float_value = code, float(code)
            return n
        if item.typ == I_COMPLEX:
            # fmt.Sscan of "REAL+IMAGi": the imaginary part starts at the first sign after the first char
            # that does not follow an exponent marker.
            k = next((j for j in range(1, len(text)) if text[j] in "+-" and text[j - 1] not in "eEpP"),
                     len(text) - 1)
            real_text, imag_text = text[:k], text[k:-1]
            real, imag = parse_float(real_text), parse_float(imag_text)
            for part, value in ((real_text, real), (imag_text, imag)):
                if value is None:
                    self.errorf(f"strconv.ParseFloat: parsing {quote(part)}: invalid syntax")
            assert real is not None and imag is not None
            n.is_complex = True
            n.complex_value = complex(real, imag)
            self._simplify_complex(n)
            return n
        if text.endswith("i"):
            f = parse_float(text[:-1])
            if f is not None:
                n.is_complex = True
                n.complex_value = complex(0, f)
                self._simplify_complex(n)
                return n
        i = parse_int(text)
        if i is not None:
            if 0 <= i < 1 << 64:
                n.is_uint = True
            if -(1 << 63) <= i < 1 << 63:
                n.is_int = True
                n.int_value = i
            if n.is_int or n.is_uint:
                n.is_float = True
                n.float_value = float(i)
        if not n.is_int and not n.is_uint:
            f = parse_float(text)
            if f is not None and not math.isinf(f):
                if not any(c in text for c in ".eEpP"):
                    self.errorf(f"integer overflow: {quote(text)}")
                n.is_float = True
                n.float_value = f
                if f == int(f) and -(1 << 63) <= int(f) < 1 << 63:
                    n.is_int = True
                    n.int_value = int(f)
                if f == int(f) and 0 <= int(f) < 1 << 64:
                    n.is_uint = True
        if not n.is_int and not n.is_uint and not n.is_float:
            self.errorf(f"illegal number syntax: {quote(text)}")
        return n

    @staticmethod
    def _simplify_complex(n: NumberNode) -> None:
        c = n.complex_value
        n.is_float = c.imag == 0
        if n.is_float:
            n.float_value = c.real
            n.is_int = c.real == int(c.real) if not math.isinf(c.real) else False
            if n.is_int:
                n.int_value = int(c.real)


def parse_trees(text: str, name: str, funcs: frozenset[str]) -> dict[str, ListNode]:
    """Parse `text` into its named trees (the main one under `name`); ParseError with Go's text."""
    items = Lexer(text).run()
    tree_set: dict[str, ListNode] = {}
    Parser(name, items, [0, 0], tree_set, funcs, name).parse()
    return tree_set
