"""The executor of Go's text/template (text/template/exec.go).

All the state of one execution lives in a `State`; parsed trees are shared and never changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyollama.golang.fmt import sorted_items, sprint_value, type_name
from pyollama.golang.strconv import quote
from pyollama.golang.values import NO_VALUE, NilPointer, Struct, Typed
from pyollama.templates.gotext.funcs import (
    P_ANY,
    P_STRING,
    P_VALUE,
    CallError,
    Func,
    indirect_interface,
    is_true,
    unwrap,
)
from pyollama.templates.gotext.node import (
    ActionNode,
    BoolNode,
    BranchNode,
    BreakNode,
    ChainNode,
    CommandNode,
    CommentNode,
    ContinueNode,
    DotNode,
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
)

if TYPE_CHECKING:
    from pyollama.templates.gotext.template import Template


class ExecError(Exception):
    pass


class Break(Exception):
    pass


class Continue(Exception):
    pass


NO_FINAL = object()  # Go's missingVal: no value piped in from the previous command


# Ceilings that keep a hostile template from hanging or exhausting a server thread (Go has none).
MAX_STEPS = 2_000_000
MAX_OUTPUT_CHARS = 64 * 1024 * 1024
MAX_TEMPLATE_DEPTH = 100


class State:
    """One execution: output buffer, variable stack, the node being evaluated (for error messages)."""

    __slots__ = (
        "depth",
        "dot_iface",
        "exec_name",
        "last_iface",
        "node",
        "out",
        "out_len",
        "steps",
        "tmpl",
        "vars",
    )

    def __init__(self, tmpl: Template, exec_name: str, dot: Any) -> None:
        self.tmpl = tmpl
        self.exec_name = exec_name
        self.out: list[str] = []
        self.out_len = 0
        # [name, value, iface]: iface tells that Go holds the value in an interface{} (it came out of a
        # map[string]interface{} or []interface{}), which only changes the type named in error messages.
        self.vars: list[list[Any]] = [["$", dot, False]]
        self.node: Node | None = None
        self.depth = 0
        self.steps = 0
        self.dot_iface = False
        self.last_iface = False  # whether the last field chain ended on a value Go holds in an interface{}

    # Errors ----------------------------------------------------------------------------------------

    def errorf(self, msg: str) -> None:
        name = self.exec_name
        if self.node is None:
            raise ExecError(f"template: {name}: {msg}")
        location, context = self.tmpl.error_context(self.node)
        raise ExecError(f"template: {location}: executing {quote(name)} at <{context}>: {msg}")

    # Variables -------------------------------------------------------------------------------------

    def set_var(self, name: str, value: Any, iface: bool = False) -> None:
        for entry in reversed(self.vars):
            if entry[0] == name:
                entry[1] = value
                entry[2] = iface
                return
        self.errorf(f"undefined variable: {name}")

    def var_entry(self, name: str) -> list[Any]:
        entry: list[Any]
        for entry in reversed(self.vars):
            if entry[0] == name:
                return entry
        self.errorf(f"undefined variable: {name}")
        raise AssertionError("unreachable")

    # Walking ---------------------------------------------------------------------------------------

    def walk(self, dot: Any, node: Node) -> None:
        self.node = node
        self.steps += 1
        if self.steps > MAX_STEPS:
            self.errorf(f"execution stopped after {MAX_STEPS} steps")
        cls = type(node)
        if cls is TextNode:
            self.write(node.text)  # type: ignore[attr-defined]
        elif cls is ActionNode:
            pipe = node.pipe  # type: ignore[attr-defined]
            val = self.eval_pipeline(dot, pipe)
            if not pipe.decl:
                self.print_value(node, val)
        elif cls is ListNode:
            for n in node.nodes:  # type: ignore[attr-defined]
                self.walk(dot, n)
        elif isinstance(node, IfNode):
            self.walk_if_or_with(False, dot, node)
        elif isinstance(node, RangeNode):
            self.walk_range(dot, node)
        elif isinstance(node, WithNode):
            self.walk_if_or_with(True, dot, node)
        elif isinstance(node, TemplateNode):
            self.walk_template(dot, node)
        elif isinstance(node, BreakNode):
            raise Break()
        elif isinstance(node, ContinueNode):
            raise Continue()
        elif isinstance(node, CommentNode):
            pass
        else:
            self.errorf(f"unknown node: {node.go_string()}")

    def write(self, s: str) -> None:
        self.out.append(s)
        self.out_len += len(s)
        if self.out_len > MAX_OUTPUT_CHARS:
            self.errorf(f"output exceeds {MAX_OUTPUT_CHARS} characters")

    def walk_if_or_with(self, is_with: bool, dot: Any, node: BranchNode) -> None:
        mark = len(self.vars)
        try:
            val = self.eval_pipeline(dot, node.pipe)
            truth, ok = is_true(indirect_interface(val))
            if not ok:
                self.errorf(f"if/with can't use {sprint_value(val)}")
            if truth:
                if is_with:
                    saved = self.dot_iface
                    self.dot_iface = False
                    try:
                        self.walk(val, node.list)
                    finally:
                        self.dot_iface = saved
                else:
                    self.walk(dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            del self.vars[mark:]

    def walk_range(self, dot: Any, r: RangeNode) -> None:
        self.node = r
        mark0 = len(self.vars)
        try:
            val = self.eval_pipeline(dot, r.pipe)
            if val is None:
                val = NO_VALUE
            mark = len(self.vars)
            decl = r.pipe.decl
            inner = unwrap(val)
            # Elements of []interface{} and map[string]interface{} are interface values in Go.
            elem_iface = isinstance(inner, (list, tuple, dict))
            saved_iface = self.dot_iface

            def one_iteration(index: Any, elem: Any) -> None:
                if decl:
                    if r.pipe.is_assign:
                        if len(decl) > 1:
                            self.set_var(decl[0].ident[0], index)
                        else:
                            self.set_var(decl[0].ident[0], elem, elem_iface)
                    else:
                        self.vars[-1][1] = elem
                        self.vars[-1][2] = elem_iface
                if len(decl) > 1:
                    if r.pipe.is_assign:
                        self.set_var(decl[1].ident[0], elem, elem_iface)
                    else:
                        self.vars[-2][1] = index
                        self.vars[-2][2] = False
                self.dot_iface = elem_iface
                try:
                    self.walk(elem, r.list)
                except Continue:
                    pass
                finally:
                    self.dot_iface = saved_iface
                    del self.vars[mark:]

            try:
                if isinstance(inner, (list, tuple, bytes, bytearray)) and not isinstance(inner, str):
                    if len(inner):
                        for i, elem in enumerate(inner):
                            one_iteration(i, elem)
                        return
                elif isinstance(inner, dict):
                    if inner:
                        for k, elem in sorted_items(inner):
                            one_iteration(k, elem)
                        return
                elif isinstance(inner, int) and not isinstance(inner, bool):
                    # Go 1.22: range over an integer n visits 0..n-1.
                    if len(decl) > 1:
                        self.errorf(f"can't use {inner} to iterate over more than one variable")
                    if inner > 0:
                        for i in range(inner):
                            one_iteration(i, i)
                        return
                elif val is NO_VALUE or isinstance(val, NilPointer):
                    pass  # acts like an empty collection
                else:
                    self.errorf(f"range can't iterate over {sprint_value(val)}")
            except Break:
                return
            if r.else_list is not None:
                self.walk(dot, r.else_list)
        finally:
            del self.vars[mark0:]

    def walk_template(self, dot: Any, t: TemplateNode) -> None:
        self.node = t
        body = self.tmpl.templates.get(t.name)
        if body is None:
            self.errorf(f"template {quote(t.name)} not defined")
        assert body is not None
        if self.depth >= MAX_TEMPLATE_DEPTH:
            self.errorf(f"exceeded maximum template depth ({MAX_TEMPLATE_DEPTH})")
        dot = self.eval_pipeline(dot, t.pipe) if t.pipe is not None else NO_VALUE
        saved = (self.vars, self.exec_name, self.dot_iface)
        self.vars = [["$", dot, False]]
        self.exec_name = t.name
        self.dot_iface = False
        self.depth += 1
        try:
            self.walk(dot, body)
        finally:
            self.depth -= 1
            self.vars, self.exec_name, self.dot_iface = saved

    # Pipelines and commands --------------------------------------------------------------------------

    def eval_pipeline(self, dot: Any, pipe: PipeNode) -> Any:
        self.node = pipe
        value: Any = NO_FINAL
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
            # Go digs one level into interface{} values: a nil interface becomes "no value".
            if value is None:
                value = NO_VALUE
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.ident[0], value)
            else:
                self.vars.append([var.ident[0], value, False])
        return value

    def not_a_function(self, args: list[Node], final: Any) -> None:
        if len(args) > 1 or final is not NO_FINAL:
            self.errorf(f"can't give argument to non-function {args[0].go_string()}")

    def eval_command(self, dot: Any, cmd: CommandNode, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, FieldNode):
            self.node = first
            return self.eval_field_chain(dot, dot, self.dot_iface, first, first.ident, cmd.args, final)
        if isinstance(first, VariableNode):
            return self.eval_variable_node(dot, first, cmd.args, final)
        if isinstance(first, IdentifierNode):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, ChainNode):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, PipeNode):
            self.not_a_function(cmd.args, final)
            return self.eval_pipeline(dot, first)
        self.node = first
        self.not_a_function(cmd.args, final)
        if isinstance(first, StringNode):
            return first.text
        if isinstance(first, DotNode):
            return dot
        if isinstance(first, BoolNode):
            return first.value
        if isinstance(first, NumberNode):
            return self.ideal_constant(first)
        if isinstance(first, NilNode):
            self.errorf("nil is not a command")
        self.errorf(f"can't evaluate command {quote(first.go_string())}")

    def ideal_constant(self, c: NumberNode) -> Any:
        self.node = c
        text = c.text
        if c.is_complex:
            return c.complex_value
        is_hex_int = len(text) > 2 and text[0] == "0" and text[1] in "xX" and not any(p in text for p in "pP")
        if c.is_float and not is_hex_int and not text.startswith("'") and any(x in text for x in ".eEpP"):
            return c.float_value
        if c.is_int:
            return c.int_value
        if c.is_uint:
            self.errorf(f"{text} overflows int")
        return NO_VALUE

    def eval_chain_node(self, dot: Any, chain: ChainNode, args: list[Node] | None, final: Any) -> Any:
        self.node = chain
        if isinstance(chain.node, NilNode):
            self.errorf(f"indirection through explicit nil in {chain.go_string()}")
        pipe = self.eval_arg(dot, None, chain.node)
        return self.eval_field_chain(dot, pipe, False, chain, chain.fields, args, final)

    def eval_variable_node(self, dot: Any, var: VariableNode, args: list[Node] | None, final: Any) -> Any:
        self.node = var
        entry = self.var_entry(var.ident[0])
        value = entry[1]
        if len(var.ident) == 1:
            self.not_a_function(args or [var], final)
            return value
        return self.eval_field_chain(dot, value, entry[2], var, var.ident[1:], args, final)

    def eval_field_chain(self, dot: Any, receiver: Any, iface: bool, node: Node, ident: Sequence[str],
                         args: list[Node] | None, final: Any) -> Any:
        n = len(ident)
        for i in range(n - 1):
            receiver = self.eval_field(dot, ident[i], node, None, NO_FINAL, receiver, iface)
            iface = not isinstance(receiver, (Struct, Typed, NilPointer))
        value = self.eval_field(dot, ident[n - 1], node, args, final, receiver, iface)
        self.last_iface = not isinstance(receiver, Struct)
        return value

    def eval_field(self, dot: Any, name: str, node: Node, args: list[Node] | None, final: Any,
                   receiver: Any, iface: bool = False) -> Any:
        if receiver is NO_VALUE:
            if self.tmpl.missingkey == "error":
                self.errorf(f"nil data; no entry for key {quote(name)}")
            return NO_VALUE
        has_args = (args is not None and len(args) > 1) or final is not NO_FINAL
        if isinstance(receiver, Struct):
            if name in receiver.fields:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return receiver.fields[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        inner = receiver.value if isinstance(receiver, Typed) else receiver
        if isinstance(inner, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in inner:
                return inner[name]
            if self.tmpl.missingkey == "zero":
                return None
            if self.tmpl.missingkey == "error":
                self.errorf(f"map has no entry for key {quote(name)}")
            return NO_VALUE
        if receiver is None:
            self.errorf(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(receiver, NilPointer):
            self.errorf(f"nil pointer evaluating {receiver.type_name}.{name}")
        receiver_type = "interface {}" if iface else type_name(receiver)
        self.errorf(f"can't evaluate field {name} in type {receiver_type}")

    def eval_function(self, dot: Any, node: IdentifierNode, cmd: Node, args: list[Node] | None,
                      final: Any) -> Any:
        self.node = node
        fn = self.tmpl.funcs.get(node.ident)
        if fn is None:
            self.errorf(f"{quote(node.ident)} is not a defined function")
        assert fn is not None
        return self.eval_call(dot, fn, cmd, node.ident, args, final)

    def eval_call(self, dot: Any, fn: Func, node: Node, name: str, args: list[Node] | None,
                  final: Any) -> Any:
        argn = args[1:] if args is not None else []
        num_in = len(argn) + (0 if final is NO_FINAL else 1)
        num_fixed = len(fn.params)
        if fn.variadic is not None:
            if num_in < num_fixed:
                self.errorf(f"wrong number of args for {name}: want at least {num_fixed} got {len(argn)}")
        elif num_in != num_fixed:
            self.errorf(f"wrong number of args for {name}: want {num_fixed} got {num_in}")

        if fn.short_circuit is not None:
            want = fn.short_circuit == "or"
            v: Any = NO_VALUE
            for arg in argn:
                v = self.eval_arg(dot, P_VALUE, arg)
                if is_true(indirect_interface(v))[0] == want:
                    return v
            if final is not NO_FINAL:
                v = final
            return v

        argv: list[Any] = []
        ifaces: list[bool] = []
        for i, arg in enumerate(argn):
            kind = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.eval_arg(dot, kind, arg))
            if fn.wants_iface:
                ifaces.append(self._arg_iface(arg, argv[-1]))
        if final is not NO_FINAL:
            i = len(argn)
            kind = fn.params[i] if i < num_fixed else fn.variadic
            argv.append(self.validate_type(final, kind))
            ifaces.append(False)
        try:
            if fn.wants_iface:
                result = fn.fn(*argv, iface=ifaces[1:])
            else:
                result = fn.fn(*argv)
        except CallError as e:
            self.node = node
            self.errorf(f"error calling {name}: {e}")
        return result

    def _arg_iface(self, arg: Node, value: Any) -> bool:
        """Whether Go passes this argument as an interface{} value (a map or slice element, unwrapped)."""
        if value is NO_VALUE:
            return False
        if isinstance(arg, FieldNode) or (isinstance(arg, VariableNode) and len(arg.ident) > 1):
            return self.last_iface
        if isinstance(arg, VariableNode):
            return bool(self.var_entry(arg.ident[0])[2])
        if isinstance(arg, DotNode):
            return self.dot_iface
        return False

    def validate_type(self, value: Any, kind: str | None) -> Any:
        if kind is None or kind == P_VALUE:
            return value
        if kind == P_ANY:
            return None if value is NO_VALUE else value
        if value is NO_VALUE:
            self.errorf(f"invalid value; expected {kind}")
        if kind == P_STRING and not isinstance(value, str):
            got = "interface {}" if value is None else type_name(value)
            self.errorf(f"wrong type for value; expected string; got {got}")
        return value

    def eval_arg(self, dot: Any, kind: str | None, n: Node) -> Any:
        self.node = n
        if isinstance(n, FieldNode):
            return self.validate_type(
                self.eval_field_chain(dot, dot, self.dot_iface, n, n.ident, [n], NO_FINAL), kind)
        if isinstance(n, DotNode):
            return self.validate_type(dot, kind)
        if isinstance(n, VariableNode):
            return self.validate_type(self.eval_variable_node(dot, n, None, NO_FINAL), kind)
        if isinstance(n, PipeNode):
            return self.validate_type(self.eval_pipeline(dot, n), kind)
        if isinstance(n, IdentifierNode):
            return self.validate_type(self.eval_function(dot, n, n, None, NO_FINAL), kind)
        if isinstance(n, ChainNode):
            return self.validate_type(self.eval_chain_node(dot, n, None, NO_FINAL), kind)
        if isinstance(n, NilNode):
            if kind in (P_VALUE, None):
                return NO_VALUE
            if kind == P_ANY:
                return None
            self.errorf(f"cannot assign nil to {kind}")
        if kind == P_STRING:
            if isinstance(n, StringNode):
                return n.text
            self.errorf(f"expected string; found {n.go_string()}")
        if isinstance(n, StringNode):
            return n.text
        if isinstance(n, BoolNode):
            return n.value
        if isinstance(n, NumberNode):
            return self.ideal_constant(n)
        self.errorf(f"can't handle assignment of {n.go_string()} to empty interface argument")

    def print_value(self, node: Node, v: Any) -> None:
        self.node = node
        if v is NO_VALUE or v is None:
            self.write("<no value>")
        elif isinstance(v, str):
            self.write(v)
        elif isinstance(v, Struct) and v.pointer and v.string is None:
            # printableValue indirects a pointer before printing: `{...}`, not `&{...}`.
            self.write(sprint_value(Struct(v.type_name, v.fields, v.json_fields, False, v.string)))
        else:
            self.write(sprint_value(v))
