"""The GGUF's own Jinja chat template, through llama.cpp's common chat code.

`ChatTemplates(model).apply(messages_json, tools_json, ...)` renders a prompt and
returns `ChatParams` (prompt, grammar for tool calls, triggers, stops) whose
`parse(text)` extracts content, reasoning and tool calls from a reply.
"""

from __future__ import annotations

import pyollama._native as _native

ChatTemplates = _native.ChatTemplates
ChatParams = _native.ChatParams
