"""Ollama's prompt building on top of a Go template.

A port of what Ollama does between a request and the text handed to the model:

- `template.Parse` (template/template.go): the Go parse, the `Vars()` check, and the
  `{{ .Response }}` node appended to templates that name neither `.Messages` nor `.Response`;
- `Template.Execute(Values)`: fill-in-the-middle mode (`.Prompt` + `.Suffix`), messages mode
  (the whole conversation as `.Messages`, with `.System` and `.Tools`), and legacy mode (the
  template run once per turn, the last turn cut right after `{{ .Response }}` so that a trailing
  assistant message is continued rather than closed);
- `collate`: consecutive messages of one role merged with a blank line (tool messages excepted),
  every system message also joined into `.System`;
- `chatPrompt` (server/prompt.go): `[img-N]` image tags and dropping the oldest messages until
  the prompt fits the context window, keeping system messages and whole tool-call blocks;
- GenerateHandler (server/routes.go): the messages /api/generate renders, and which of the
  above paths it takes;
- capabilities read off a template: tools, insert (suffix), thinking tags;
- the tag that opens a tool call (tools.parseTag), which the reply's tool-call parser looks for.

The values a template sees (Ollama's Go template structs) are built in templates/values.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyollama.golang.values import Typed
from pyollama.templates.gotext import (
    ActionNode,
    BranchNode,
    CommandNode,
    FieldNode,
    IfNode,
    ListNode,
    Node,
    PipeNode,
    RangeNode,
    Template,
    TemplateError,
    TemplateNode,
    TextNode,
    WithNode,
    identifiers,
)
from pyollama.templates.values import (
    ThinkValue,
    mapping,
    message_value,
    think_values,
    tools_value,
)


@dataclass(frozen=True)
class Truncation:
    """How chatPrompt fits a conversation into the context window.

    `count_tokens` tokenizes a rendered prompt; `image_tokens` is what each image costs
    (Ollama: 768 when the model has a vision projector, else 0).
    """

    count_tokens: Callable[[str], int]
    num_ctx: int
    image_tokens: int = 0


@dataclass(frozen=True)
class RenderedPrompt:
    """A rendered prompt, the images it refers to as `[img-N]` (N = index here), and how many
    messages truncation dropped from the front."""

    prompt: str
    images: list[Any] = field(default_factory=list)
    n_dropped: int = 0


# --------------------------------------------------------------------------------------------------
# Parsing and what a template supports.


@dataclass(frozen=True)
class _Prepared:
    """Ollama's view of a parsed template, computed once per Template."""

    vars: frozenset[str]  # Vars(): lower-cased field and variable names, before the Response touch-up
    full: Template  # the template as executed, `{{ .Response }}` appended when Parse adds it
    last_turn: Template  # legacy mode's final turn: cut after `.Response`, without funcs or defines


def _response_action() -> ActionNode:
    pipe = PipeNode(0, 0)
    cmd = CommandNode(0)
    cmd.args.append(FieldNode(0, ".Response"))
    pipe.cmds.append(cmd)
    return ActionNode(0, 0, pipe)


def _vars(template: Template) -> frozenset[str]:
    names: list[str] = []
    for _, root in template.walk_nodes():
        for node in root.nodes:
            names.extend(identifiers(node))
    return frozenset(n.lower() for n in names)


@functools.lru_cache(maxsize=256)
def _prepare(template: Template) -> _Prepared:
    names = _vars(template)
    full = template
    if "messages" not in names and "response" not in names:
        full = template.derive(ListNode(template.root.pos, [*template.root.nodes, _response_action()]))
    last_turn = full.derive(_cut_after_response(full.root), bare=True)
    return _Prepared(names, full, last_turn)


def parse_template(text: str) -> Template:
    """Ollama's template.Parse: Go's parse plus its identifier walk, which rejects
    `{{ template "name" }}` without an argument ("undefined template specified")."""
    template = Template.parse(text)
    _prepare(template)
    return template


def template_vars(template: Template) -> frozenset[str]:
    """The lower-cased field and variable names the template uses (Ollama's Vars())."""
    return _prepare(template).vars


def uses_messages(template: Template) -> bool:
    """Messages mode: the template ranges over `.Messages` itself."""
    return "messages" in template_vars(template)


def uses_tools(template: Template) -> bool:
    """The `tools` capability."""
    return "tools" in template_vars(template)


def uses_suffix(template: Template) -> bool:
    """The `insert` capability (fill in the middle)."""
    return "suffix" in template_vars(template)


def uses_think(template: Template) -> bool:
    """The `thinking` capability: tags around `.Thinking` inside a `range .Messages`."""
    opening, closing = thinking_tags(template)
    return opening != "" and closing != ""


@functools.lru_cache(maxsize=64)
def template_capabilities(text: str) -> tuple[str, ...]:
    """The capabilities Ollama's Model.Capabilities reads off a Go template, in its order:
    `tools` (uses_tools), `insert` (uses_suffix), `thinking` (uses_think). A template that does
    not parse has none: it renders nothing, so it can serve none of them."""
    try:
        template = parse_template(text)
    except TemplateError:
        return ()
    checks = (("tools", uses_tools), ("insert", uses_suffix), ("thinking", uses_think))
    return tuple(name for name, check in checks if check(template))


def thinking_tags(template: Template) -> tuple[str, str]:
    """Ollama's thinking.InferTags: the text that opens and closes thinking in the template.

    For each `.Thinking` field inside a `range` over `.Messages`, the nearest enclosing list's
    first and last text nodes (trimmed) are the tags; later matches win.
    """
    opening = closing = ""
    ancestors: list[Node] = []

    def range_uses_messages(r: RangeNode) -> bool:
        found = False

        def visit(n: Node) -> None:
            nonlocal found
            if isinstance(n, FieldNode) and n.ident[0] == "Messages":
                found = True
            for c in _children(n):
                visit(c)

        visit(r.pipe)
        return found

    def visit(n: Node) -> None:
        nonlocal opening, closing
        ancestors.append(n)
        if isinstance(n, FieldNode) and n.ident and n.ident[0] == "Thinking":
            nearest_range = next((a for a in reversed(ancestors) if isinstance(a, RangeNode)), None)
            if nearest_range is not None and range_uses_messages(nearest_range):
                for a in reversed(ancestors):
                    if isinstance(a, ListNode):
                        if isinstance(a.nodes[0], TextNode):
                            opening = a.nodes[0].text.strip()
                        if isinstance(a.nodes[-1], TextNode):
                            closing = a.nodes[-1].text.strip()
                        break
        for c in _children(n):
            visit(c)
        ancestors.pop()

    visit(_prepare(template).full.root)
    return opening, closing


def _names_tool_calls(pipe: PipeNode) -> bool:
    return any(isinstance(arg, FieldNode) and "ToolCalls" in arg.ident for cmd in pipe.cmds for arg in cmd.args)


def _tool_calls_block(nodes: Sequence[Node], kind: type[BranchNode]) -> BranchNode | None:
    """The first `kind` node (tree order) whose pipeline names `.ToolCalls`, searched through
    lists and the bodies of if, range and with (tools.findToolCallNode, for IfNode)."""
    for n in nodes:
        if isinstance(n, kind) and _names_tool_calls(n.pipe):
            return n
        if isinstance(n, ListNode):
            found = _tool_calls_block(n.nodes, kind)
        elif isinstance(n, (IfNode, RangeNode, WithNode)):
            found = _tool_calls_block(n.list.nodes, kind)
            if found is None and n.else_list is not None:
                found = _tool_calls_block(n.else_list.nodes, kind)
        else:
            continue
        if found is not None:
            return found
    return None


def _first_text(nodes: Sequence[Node]) -> TextNode | None:
    """tools.findTextNode: the first text, depth first, that no action comes before; the search
    ends inside the first if, range or with it enters."""
    for n in nodes:
        if isinstance(n, TextNode):
            return n
        if isinstance(n, ActionNode):
            return None
        if isinstance(n, ListNode):
            found = _first_text(n.nodes)
            if found is not None:
                return found
        elif isinstance(n, BranchNode):
            found = _first_text(n.list.nodes)
            if found is None and n.else_list is not None:
                found = _first_text(n.else_list.nodes)
            return found
    return None


def _closing_text(block: BranchNode) -> str:
    """The text that closes the calls: the first line of the text right after the `range
    .ToolCalls` in the block (`{{ end }}</tool_call>`), else the end of the range's own last text
    after its JSON (`...}</tool_call>{{ end }}`)."""
    loop = block if isinstance(block, RangeNode) else _tool_calls_block(block.list.nodes, RangeNode)
    if loop is None:
        return ""
    siblings = block.list.nodes
    if loop in siblings:
        following = siblings[siblings.index(loop) + 1 :]
        if following and isinstance(following[0], TextNode):
            text = following[0].text.strip().split("\n")[0].strip()
            if text and "{" not in text:
                return text
    last = loop.list.nodes[-1] if loop.list.nodes else None
    if isinstance(last, TextNode) and "}" in last.text:
        return last.text.rsplit("}", 1)[1].strip().split("\n")[0].strip()
    return ""


@functools.lru_cache(maxsize=64)
def tool_call_tags(template: Template) -> tuple[str, str]:
    """The text that opens a tool call and the text that closes it, read off the template.

    The opening is Ollama's tools.parseTag: in the first `{{ if .ToolCalls }}` block, the first
    text the block writes, cut at its first `{` and trimmed (`<tool_call>`, `[TOOL_CALLS] [`).
    A template with no such block but a `{{ range .ToolCalls }}` is read the same way from the
    range's body. "" when that leaves nothing (calls written as bare JSON, Ollama's `{` tag) or
    the template has neither. The closing (`</tool_call>`) is "" when there is none.
    """
    root = _prepare(template).full.root.nodes
    block = _tool_calls_block(root, IfNode) or _tool_calls_block(root, RangeNode)
    if block is None:
        return "", ""
    text = _first_text(block.list.nodes)
    if text is None:
        return "", ""
    opening = text.text.replace("\r\n", "\n").split("{", 1)[0].strip()
    return (opening, _closing_text(block)) if opening else ("", "")


def _children(n: Node) -> list[Node]:
    """The sub-nodes thinking.templateVisit descends into."""
    if isinstance(n, ListNode):
        return list(n.nodes)
    if isinstance(n, BranchNode):
        out: list[Node] = [n.pipe, n.list]
        if n.else_list is not None:
            out.append(n.else_list)
        return out
    if isinstance(n, ActionNode):
        return [n.pipe]
    if isinstance(n, TemplateNode):
        return [n.pipe] if n.pipe is not None else []
    if isinstance(n, PipeNode):
        return list(n.cmds)
    if isinstance(n, CommandNode):
        return list(n.args)
    return []


def _cut_after_response(root: ListNode) -> ListNode:
    """Ollama's deleteNode: drop every node after the first `.Response` field (tree order).

    A branch whose body holds the cut loses its else-branch; Go's version dies on a nil type
    assertion there, which is a 500 in Ollama rather than a behaviour worth copying.
    """
    cut = False

    def doomed(n: Node) -> bool:
        nonlocal cut
        if isinstance(n, FieldNode) and "Response" in n.ident:
            cut = True
            return False
        return cut

    def walk(n: Node) -> Node | None:
        if doomed(n):
            return None
        if isinstance(n, ListNode):
            kept = [w for w in (walk(c) for c in n.nodes) if w is not None]
            return ListNode(n.pos, kept)
        if isinstance(n, BranchNode):
            body = walk(n.list)
            assert isinstance(body, ListNode) or body is None
            else_list = walk(n.else_list) if n.else_list is not None else None
            assert isinstance(else_list, ListNode) or else_list is None
            return type(n)(n.pos, n.line, n.pipe, body if body is not None else ListNode(n.list.pos), else_list)
        if isinstance(n, ActionNode):
            pipe = walk(n.pipe)
            if pipe is None:
                return None
            assert isinstance(pipe, PipeNode)
            return ActionNode(n.pos, n.line, pipe)
        if isinstance(n, PipeNode):
            new = PipeNode(n.pos, n.line)
            new.is_assign = n.is_assign
            new.decl = list(n.decl)
            for c in n.cmds:
                args = [w for w in (walk(a) for a in c.args) if w is not None]
                if not args:
                    return None
                cmd = CommandNode(c.pos)
                cmd.args = args
                new.cmds.append(cmd)
            return new if new.cmds else None
        return n

    out = walk(root)
    assert isinstance(out, ListNode)
    return out


def _normalize(m: Mapping[str, Any]) -> dict[str, Any]:
    """A private copy of a message, role lower-cased as api.Message's JSON decoding does."""
    out = dict(mapping(m, "message"))
    out["role"] = str(out.get("role") or "").lower()
    out["content"] = str(out.get("content") or "")
    return out


def _collate(messages: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Merge runs of one role (tool messages excepted); collect every system message's content."""
    system: list[str] = []
    collated: list[dict[str, Any]] = []
    for m in messages:
        m = _normalize(m)
        if m["role"] == "system":
            system.append(m["content"])
        if collated and collated[-1]["role"] == m["role"] and m["role"] != "tool":
            collated[-1]["content"] += "\n\n" + m["content"]
        else:
            collated.append(m)
    return "\n\n".join(system), collated


# --------------------------------------------------------------------------------------------------
# Rendering.


def execute(template: Template, *, messages: Sequence[Mapping[str, Any]] = (),
            tools: Sequence[Mapping[str, Any]] | None = None, prompt: str = "", suffix: str = "",
            think: ThinkValue = None) -> str:
    """Ollama's Template.Execute(Values): fill-in-the-middle, messages, or legacy per-turn mode."""
    prep = _prepare(template)
    system, collated = _collate(messages)
    think_fields = think_values(think)
    if prompt and suffix:
        return prep.full.execute({"Prompt": prompt, "Suffix": suffix, "Response": "", **think_fields})
    if "messages" in prep.vars:
        return prep.full.execute({
            "System": system,
            # convertMessagesForTemplate keeps a nil slice nil: `json .Messages` is `null` then.
            "Messages": Typed("[]*template.templateMessage", [message_value(m) for m in collated],
                              nil=not collated),
            "Tools": tools_value(tools),
            "Response": "",
            **think_fields,
        })

    # Legacy: one run per turn. A system message or a new user turn closes the pending turn.
    out: list[str] = []
    system = prompt_text = response = ""

    def flush() -> None:
        nonlocal system, prompt_text, response
        out.append(prep.full.execute({"System": system, "Prompt": prompt_text, "Response": response,
                                      **think_fields}))
        system = prompt_text = response = ""

    for m in collated:
        role = m["role"]
        if role == "system":
            if prompt_text or response:
                flush()
            system = m["content"]
        elif role == "user":
            if response:
                flush()
            prompt_text = m["content"]
        elif role == "assistant":
            response = m["content"]
    out.append(prep.last_turn.execute({"System": system, "Prompt": prompt_text, "Response": response,
                                       **think_fields}))
    return "".join(out)


def _tool_block_start(msgs: Sequence[Mapping[str, Any]], idx: int) -> int:
    """Where a cut at `idx` must start so a tool result keeps the assistant call that produced it."""
    if idx <= 0 or idx >= len(msgs) or msgs[idx]["role"] != "tool":
        return idx
    start = idx
    while start > 0 and msgs[start - 1]["role"] == "tool":
        start -= 1
    assistant = start - 1
    if assistant >= 0 and msgs[assistant]["role"] == "assistant" and msgs[assistant].get("tool_calls"):
        return assistant
    return idx


def chat_prompt(template: Template, messages: Sequence[Mapping[str, Any]], *,
                tools: Sequence[Mapping[str, Any]] | None = None, think: ThinkValue = None,
                truncation: Truncation | None = None) -> RenderedPrompt:
    """Ollama's chatPrompt: truncate to the context window, tag images `[img-N]`, render.

    `messages` are api.Message-shaped mappings: role, content, and optionally thinking,
    images (bytes, or base64 text), tool_calls, tool_name, tool_call_id.
    """
    msgs = [_normalize(m) for m in messages]
    system: list[dict[str, Any]] = []
    current = 0
    if truncation is not None:
        last = len(msgs) - 1
        for i in range(len(msgs)):
            start = _tool_block_start(msgs, i)
            system = [m for m in msgs[:start] if m["role"] == "system"]
            rendered = execute(template, messages=system + msgs[start:], tools=tools, think=think)
            n_tokens = truncation.count_tokens(rendered)
            if truncation.image_tokens:
                n_tokens += truncation.image_tokens * sum(len(m.get("images") or []) for m in msgs[start:])
            if n_tokens <= truncation.num_ctx or i == last:
                current = start
                break

    images: list[Any] = []
    kept = msgs[current:]
    for m in kept:
        prefix = ""
        content = m["content"]
        for image in m.get("images") or []:
            tag = f"[img-{len(images)}]"
            images.append(image)
            if "[img]" in content:
                content = content.replace("[img]", tag, 1)
            else:
                prefix += tag
        m["content"] = prefix + content
    rendered = execute(template, messages=system + kept, tools=tools, think=think)
    return RenderedPrompt(rendered, images, current)


def render_chat(template: Template, messages: Sequence[Mapping[str, Any]], *,
                tools: Sequence[Mapping[str, Any]] | None = None, think: ThinkValue = None) -> str:
    """The /api/chat prompt for a conversation (no truncation): see chat_prompt."""
    return chat_prompt(template, messages, tools=tools, think=think).prompt


def generate_prompt(template: Template, *, prompt: str, system: str | None = None, model_system: str = "",
                    history: Sequence[Mapping[str, Any]] = (), suffix: str | None = None,
                    images: Sequence[Any] | int = (), think: ThinkValue = None,
                    request_template: bool = False, truncation: Truncation | None = None) -> RenderedPrompt:
    """The /api/generate prompt, as GenerateHandler builds it.

    With a suffix, the template runs in fill-in-the-middle mode. Otherwise the messages are
    the system prompt (the request's, else the model's), the model's MESSAGE `history` (pass
    none when the request carries `context`) and the user prompt with its images. Without a
    request `template` these go through chat_prompt (image tags, truncation, `.Tools` an empty
    list); with one (`request_template`), the template is executed on them directly.
    `images` may be a count when only the tags matter.
    """
    image_list = [b""] * images if isinstance(images, int) else list(images)
    if suffix:
        return RenderedPrompt(execute(template, prompt=prompt, suffix=suffix, think=think), image_list)
    msgs: list[dict[str, Any]] = []
    if system:
        msgs.append({"role": "system", "content": system})
    elif model_system:
        msgs.append({"role": "system", "content": model_system})
    msgs.extend(dict(m) for m in history)
    user: dict[str, Any] = {"role": "user", "content": prompt}
    if image_list:
        user["images"] = image_list
    msgs.append(user)
    if request_template:
        return RenderedPrompt(execute(template, messages=msgs, think=think), image_list)
    return chat_prompt(template, msgs, tools=[], think=think, truncation=truncation)


def render_generate(template: Template, *, prompt: str, system: str | None = None, model_system: str = "",
                    history: Sequence[Mapping[str, Any]] = (), suffix: str | None = None,
                    images: Sequence[Any] | int = (), think: ThinkValue = None,
                    request_template: bool = False) -> str:
    """The /api/generate prompt (no truncation): see generate_prompt."""
    return generate_prompt(template, prompt=prompt, system=system, model_system=model_system, history=history,
                           suffix=suffix, images=images, think=think, request_template=request_template).prompt


__all__ = [
    "RenderedPrompt",
    "TemplateError",
    "ThinkValue",
    "Truncation",
    "chat_prompt",
    "execute",
    "generate_prompt",
    "parse_template",
    "render_chat",
    "render_generate",
    "template_vars",
    "thinking_tags",
    "tool_call_tags",
    "uses_messages",
    "uses_suffix",
    "uses_think",
    "uses_tools",
]
