// Chat templates through llama.cpp's common chat code: render the GGUF's Jinja
// template with messages and tools, and parse a model's reply (content,
// reasoning, tool calls) back out of the generated text.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include "chat.h"
#include "json.h"
#include "peg-parser.h"

#include <string>
#include <vector>

namespace pyollama {

namespace {

struct TemplatesHandle {
    ModelPtr model;
    common_chat_templates_ptr tmpls;
};

// The result of one apply(): the prompt plus what generation and parsing need.
struct ChatParamsHandle {
    common_chat_params params;
    common_peg_arena arena;
    bool has_arena = false;
};

common_reasoning_format reasoning_from_name(const std::string & name) {
    if (name == "none") return COMMON_REASONING_FORMAT_NONE;
    if (name == "auto") return COMMON_REASONING_FORMAT_AUTO;
    if (name == "deepseek") return COMMON_REASONING_FORMAT_DEEPSEEK;
    raise_value("reasoning_format must be none, auto or deepseek");
}

std::shared_ptr<ChatParamsHandle> apply(TemplatesHandle & t, const std::string & messages_json,
                                        const std::string & tools_json, bool add_generation_prompt,
                                        const std::string & json_schema, const std::string & grammar,
                                        const std::string & tool_choice, bool parallel_tool_calls,
                                        bool enable_thinking, const std::string & reasoning_format) {
    common_chat_templates_inputs inputs;
    try {
        inputs.messages = common_chat_msgs_parse_oaicompat(common_json::parse(messages_json));
        if (!tools_json.empty()) {
            inputs.tools = common_chat_tools_parse_oaicompat(common_json::parse(tools_json));
        }
    } catch (const std::exception & e) {
        raise_value(std::string("invalid messages or tools: ") + e.what());
    }
    inputs.add_generation_prompt = add_generation_prompt;
    inputs.json_schema = json_schema;
    inputs.grammar = grammar;
    inputs.use_jinja = true;
    inputs.parallel_tool_calls = parallel_tool_calls;
    inputs.enable_thinking = enable_thinking;
    inputs.reasoning_format = reasoning_from_name(reasoning_format);
    if (tool_choice == "auto" || tool_choice.empty()) inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_AUTO;
    else if (tool_choice == "required") inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    else if (tool_choice == "none") inputs.tool_choice = COMMON_CHAT_TOOL_CHOICE_NONE;
    else raise_value("tool_choice must be auto, required or none");

    auto out = std::make_shared<ChatParamsHandle>();
    try {
        py::gil_scoped_release release;
        out->params = common_chat_templates_apply(t.tmpls.get(), inputs);
        if (!out->params.parser.empty()) {
            out->arena.load(out->params.parser);
            out->has_arena = true;
        }
    } catch (const std::exception & e) {
        raise_value(std::string("chat template failed: ") + e.what());
    }
    return out;
}

py::dict parse_reply(const ChatParamsHandle & h, const std::string & text, bool is_partial,
                     const std::string & reasoning_format, bool parse_tool_calls) {
    common_chat_parser_params p(h.params);
    p.reasoning_format = reasoning_from_name(reasoning_format);
    p.parse_tool_calls = parse_tool_calls;
    if (h.has_arena) p.parser = h.arena;
    common_chat_msg msg;
    try {
        msg = common_chat_parse(text, is_partial, p);
    } catch (const std::exception & e) {
        raise_value(std::string("could not parse the model's reply: ") + e.what());
    }
    py::dict d;
    d["content"] = msg.content;
    d["reasoning_content"] = msg.reasoning_content;
    py::list calls;
    for (const auto & c : msg.tool_calls) {
        py::dict call;
        call["name"] = c.name;
        call["arguments"] = c.arguments;  // a JSON text; the caller decodes it
        call["id"] = c.id;
        calls.append(call);
    }
    d["tool_calls"] = calls;
    return d;
}

}  // namespace

void bind_chat(py::module_ & m) {
    py::class_<TemplatesHandle, std::shared_ptr<TemplatesHandle>>(m, "ChatTemplates")
        .def(py::init([](ModelPtr model, const std::string & override_template) {
            auto h = std::make_shared<TemplatesHandle>();
            h->model = model;
            try {
                // common_chat_templates_init: throws on a template that does not parse.
                h->tmpls = common_chat_templates_init(model->model, override_template);
            } catch (const std::exception & e) {
                raise_value(std::string("invalid chat template: ") + e.what());
            }
            if (!h->tmpls) raise_value("model has no usable chat template");
            return h;
        }), py::arg("model"), py::arg("override_template") = "")
        .def_property_readonly("source", [](const TemplatesHandle & h) { return common_chat_templates_source(h.tmpls.get()); })
        .def_property_readonly("was_explicit", [](const TemplatesHandle & h) { return common_chat_templates_was_explicit(h.tmpls.get()); })
        .def_property_readonly("supports_thinking", [](const TemplatesHandle & h) {
            return common_chat_templates_support_enable_thinking(h.tmpls.get());
        })
        .def("caps", [](const TemplatesHandle & h) { return common_chat_templates_get_caps(h.tmpls.get()); })
        .def("apply", &apply, py::arg("messages_json"), py::arg("tools_json") = "", py::arg("add_generation_prompt") = true,
             py::arg("json_schema") = "", py::arg("grammar") = "", py::arg("tool_choice") = "auto",
             py::arg("parallel_tool_calls") = false, py::arg("enable_thinking") = true,
             py::arg("reasoning_format") = "auto",
             "common_chat_templates_apply: messages/tools as OpenAI-style JSON text");

    py::class_<ChatParamsHandle, std::shared_ptr<ChatParamsHandle>>(m, "ChatParams")
        .def_property_readonly("prompt", [](const ChatParamsHandle & h) { return h.params.prompt; })
        .def_property_readonly("grammar", [](const ChatParamsHandle & h) { return h.params.grammar; })
        .def_property_readonly("grammar_lazy", [](const ChatParamsHandle & h) { return h.params.grammar_lazy; })
        .def_property_readonly("generation_prompt", [](const ChatParamsHandle & h) { return h.params.generation_prompt; })
        .def_property_readonly("format", [](const ChatParamsHandle & h) { return std::string(common_chat_format_name(h.params.format)); })
        .def_property_readonly("supports_thinking", [](const ChatParamsHandle & h) { return h.params.supports_thinking; })
        .def_property_readonly("thinking_start_tag", [](const ChatParamsHandle & h) { return h.params.thinking_start_tag; })
        .def_property_readonly("thinking_end_tags", [](const ChatParamsHandle & h) { return h.params.thinking_end_tags; })
        .def_property_readonly("additional_stops", [](const ChatParamsHandle & h) { return h.params.additional_stops; })
        .def_property_readonly("preserved_tokens", [](const ChatParamsHandle & h) { return h.params.preserved_tokens; })
        .def_property_readonly("grammar_triggers", [](const ChatParamsHandle & h) {
            py::list out;
            for (const auto & t : h.params.grammar_triggers) {
                py::dict d;
                switch (t.type) {
                    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN: d["type"] = "token"; break;
                    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD: d["type"] = "word"; break;
                    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN: d["type"] = "pattern"; break;
                    default: d["type"] = "pattern_full"; break;
                }
                d["value"] = t.value;
                d["token"] = t.token == LLAMA_TOKEN_NULL ? py::object(py::none()) : py::object(py::int_(t.token));
                out.append(d);
            }
            return out;
        })
        .def("parse", &parse_reply, py::arg("text"), py::arg("is_partial") = false,
             py::arg("reasoning_format") = "auto", py::arg("parse_tool_calls") = true,
             "common_chat_parse: {content, reasoning_content, tool_calls:[{name, arguments(JSON text), id}]}");
}

}  // namespace pyollama
