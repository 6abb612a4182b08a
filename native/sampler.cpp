// Sampling: llama_sampler chains built by hand (low level), llama.cpp's common
// sampler (what llama-server uses: penalties, top-k/p, min-p, typical, temperature,
// mirostat, logit bias, lazy/strict grammar) and JSON schema -> GBNF.
#include "errors.hpp"
#include "handles.hpp"

#include <pybind11/stl.h>

#include "json-schema-to-grammar.h"
#include "json.h"
#include "sampling.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace pyollama {

namespace {

struct ChainHandle {
    llama_sampler * chain = nullptr;
    llama_sampler * grammar = nullptr;  // owned by the chain; kept to vet tokens before accept
    int32_t n_vocab = 0;                // of the grammar's model
    ChainHandle() {
        llama_sampler_chain_params p = llama_sampler_chain_default_params();
        chain = llama_sampler_chain_init(p);
    }
    ~ChainHandle() { llama_sampler_free(chain); }
    void add(llama_sampler * s, const char * what) {
        if (!s) raise_value(std::string("could not create sampler: ") + what);
        llama_sampler_chain_add(chain, s);  // the chain owns s from here on
    }
};

struct CommonSamplerHandle {
    ModelPtr model;
    common_sampler * smpl = nullptr;
    bool has_grammar = false;
    llama_token last_sampled = LLAMA_TOKEN_NULL;  // with a grammar, only this token may be accepted
    // Plain greedy (temperature <= 0, no grammar, penalties or biases): the argmax of the
    // logits is the chain's answer, so skip building the full candidate array each token.
    bool greedy = false;
    ~CommonSamplerHandle() {
        if (smpl) common_sampler_free(smpl);
    }
};

// Deeply nested grammars and schemas overflow the stack of llama.cpp's recursive parsers.
constexpr int kMaxNesting = 128;

void check_nesting(const std::string & text, char open_a, char close_a, char open_b, char close_b, const char * what) {
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == open_a || c == open_b) {
            if (++depth > kMaxNesting) raise_value(std::string(what) + " nests deeper than " + std::to_string(kMaxNesting));
        } else if (c == close_a || c == close_b) {
            depth = std::max(0, depth - 1);
        }
    }
}

// Would the grammar sampler let `token` through next? (apply on a one-candidate array)
bool grammar_allows(llama_sampler * grammar, llama_token token) {
    llama_token_data data{token, 0.0f, 0.0f};
    llama_token_data_array arr{&data, 1, -1, false};
    llama_sampler_apply(grammar, &arr);
    return std::isfinite(arr.data[0].logit);
}

void check_prob(float p, const char * name) {
    if (!std::isfinite(p) || p < 0.0f || p > 1.0f) raise_value(std::string(name) + " must be in [0, 1]");
}

void check_sample_index(ContextHandle & ctx, int32_t idx) {
    ctx.check_output(idx);
}

std::vector<common_grammar_trigger> parse_triggers(const std::vector<py::dict> & triggers) {
    std::vector<common_grammar_trigger> out;
    for (const auto & t : triggers) {
        common_grammar_trigger g;
        std::string type = t["type"].cast<std::string>();
        if (type == "token") g.type = COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN;
        else if (type == "word") g.type = COMMON_GRAMMAR_TRIGGER_TYPE_WORD;
        else if (type == "pattern") g.type = COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN;
        else if (type == "pattern_full") g.type = COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL;
        else raise_value("unknown grammar trigger type '" + type + "'");
        g.value = t.contains("value") ? t["value"].cast<std::string>() : std::string();
        g.token = t.contains("token") && !t["token"].is_none() ? t["token"].cast<llama_token>() : LLAMA_TOKEN_NULL;
        out.push_back(std::move(g));
    }
    return out;
}

std::shared_ptr<CommonSamplerHandle> make_common_sampler(
        ModelPtr model, uint32_t seed, float temperature, int32_t top_k, float top_p, float min_p, float typical_p,
        int32_t repeat_last_n, float repeat_penalty, float presence_penalty, float frequency_penalty,
        int32_t mirostat, float mirostat_tau, float mirostat_eta, const std::string & grammar,
        const std::string & grammar_kind, bool grammar_lazy, const std::vector<py::dict> & grammar_triggers,
        const std::vector<int32_t> & preserved_tokens, const std::string & generation_prompt,
        const std::map<int32_t, float> & logit_bias, int32_t n_probs) {
    common_params_sampling p;
    p.seed = seed;
    p.temp = temperature;
    p.top_k = top_k;
    check_prob(top_p, "top_p");
    p.top_p = top_p;
    check_prob(min_p, "min_p");
    p.min_p = min_p;
    if (!std::isfinite(typical_p) || typical_p <= 0.0f) raise_value("typical_p must be positive");
    p.typ_p = typical_p;
    if (repeat_last_n > (1 << 20)) raise_value("repeat_last_n must be at most 1048576");
    p.penalty_last_n = repeat_last_n < 0 ? llama_model_n_ctx_train(model->model) : repeat_last_n;
    p.n_prev = std::max(64, p.penalty_last_n);
    if (!std::isfinite(repeat_penalty) || repeat_penalty <= 0.0f) raise_value("repeat_penalty must be positive");
    p.penalty_repeat = repeat_penalty;
    if (!std::isfinite(presence_penalty)) raise_value("presence_penalty must be finite");
    p.penalty_present = presence_penalty;
    if (!std::isfinite(frequency_penalty)) raise_value("frequency_penalty must be finite");
    p.penalty_freq = frequency_penalty;
    if (mirostat < 0 || mirostat > 2) raise_value("mirostat must be 0, 1 or 2");
    p.mirostat = mirostat;
    p.mirostat_tau = mirostat_tau;
    p.mirostat_eta = mirostat_eta;
    p.n_probs = n_probs;
    if (!grammar.empty()) {
        check_nesting(grammar, '(', ')', '[', ']', "grammar");
        common_grammar_type kind = COMMON_GRAMMAR_TYPE_USER;
        if (grammar_kind == "output_format") kind = COMMON_GRAMMAR_TYPE_OUTPUT_FORMAT;
        else if (grammar_kind == "tool_calls") kind = COMMON_GRAMMAR_TYPE_TOOL_CALLS;
        else if (grammar_kind != "user") raise_value("grammar_kind must be user, output_format or tool_calls");
        p.grammar = common_grammar(kind, grammar);
    }
    p.grammar_lazy = grammar_lazy;
    p.grammar_triggers = parse_triggers(grammar_triggers);
    for (int32_t t : preserved_tokens) {
        check_token(*model, t);
        p.preserved_tokens.insert(t);
    }
    p.generation_prompt = generation_prompt;
    for (const auto & [tok, bias] : logit_bias) {
        check_token(*model, tok);
        p.logit_bias.push_back({tok, bias});
    }
    auto h = std::make_shared<CommonSamplerHandle>();
    h->model = model;
    h->has_grammar = !grammar.empty();
    int32_t n_suppress = 0;
    llama_vocab_get_suppress_tokens(model->vocab, &n_suppress);
    h->greedy = temperature <= 0.0f && grammar.empty() && mirostat == 0 && logit_bias.empty() && n_suppress == 0 &&
                repeat_penalty == 1.0f && presence_penalty == 0.0f && frequency_penalty == 0.0f && n_probs == 0;
    try {
        // common_sampler_init: nullptr or an exception when the grammar does not parse.
        h->smpl = common_sampler_init(model->model, p);
    } catch (const std::exception & e) {
        raise_value(std::string("invalid sampler settings: ") + e.what());
    }
    if (!h->smpl) raise_value("invalid grammar");
    return h;
}

llama_token sample_one(CommonSamplerHandle & s, ContextHandle & ctx, int32_t idx, bool grammar_first) {
    if (s.greedy) {
        const float * logits = llama_get_logits_ith(ctx.ctx, idx);
        if (logits) {
            const int32_t n = s.model->n_vocab;
            int32_t best = 0;
            for (int32_t i = 1; i < n; ++i) {
                if (logits[i] > logits[best]) best = i;
            }
            return best;
        }
    }
    return common_sampler_sample(s.smpl, ctx.ctx, idx, grammar_first);
}

}  // namespace

void bind_sampler(py::module_ & m) {
    py::class_<ChainHandle, std::shared_ptr<ChainHandle>>(m, "SamplerChain")
        .def(py::init<>(), "llama_sampler_chain_init")
        .def("add_greedy", [](ChainHandle & c) { c.add(llama_sampler_init_greedy(), "greedy"); })
        .def("add_dist", [](ChainHandle & c, uint32_t seed) { c.add(llama_sampler_init_dist(seed), "dist"); }, py::arg("seed"))
        .def("add_top_k", [](ChainHandle & c, int32_t k) { c.add(llama_sampler_init_top_k(k), "top_k"); }, py::arg("k"))
        .def("add_top_p", [](ChainHandle & c, float p, size_t min_keep) {
            check_prob(p, "top_p"); c.add(llama_sampler_init_top_p(p, min_keep), "top_p");
        }, py::arg("p"), py::arg("min_keep") = 1)
        .def("add_min_p", [](ChainHandle & c, float p, size_t min_keep) {
            check_prob(p, "min_p"); c.add(llama_sampler_init_min_p(p, min_keep), "min_p");
        }, py::arg("p"), py::arg("min_keep") = 1)
        .def("add_typical", [](ChainHandle & c, float p, size_t min_keep) {
            check_prob(p, "typical_p"); c.add(llama_sampler_init_typical(p, min_keep), "typical");
        }, py::arg("p"), py::arg("min_keep") = 1)
        .def("add_temp", [](ChainHandle & c, float t) { c.add(llama_sampler_init_temp(t), "temp"); }, py::arg("t"))
        .def("add_mirostat", [](ChainHandle & c, const ModelHandle & model, uint32_t seed, float tau, float eta, int32_t m_) {
            if (m_ <= 0) raise_value("m must be positive");
            c.add(llama_sampler_init_mirostat(model.n_vocab, seed, tau, eta, m_), "mirostat");
        }, py::arg("model"), py::arg("seed"), py::arg("tau") = 5.0f, py::arg("eta") = 0.1f, py::arg("m") = 100)
        .def("add_mirostat_v2", [](ChainHandle & c, uint32_t seed, float tau, float eta) {
            c.add(llama_sampler_init_mirostat_v2(seed, tau, eta), "mirostat_v2");
        }, py::arg("seed"), py::arg("tau") = 5.0f, py::arg("eta") = 0.1f)
        .def("add_penalties", [](ChainHandle & c, const ModelHandle & model, int32_t last_n, float repeat, float freq, float present) {
            if (last_n < -1) raise_value("last_n must be >= -1");
            if (last_n > (1 << 20)) raise_value("last_n must be at most 1048576");
            if (!std::isfinite(repeat) || repeat <= 0.0f) raise_value("repeat penalty must be positive");
            c.add(llama_sampler_init_penalties(model.n_vocab, last_n, repeat, freq, present), "penalties");
        }, py::arg("model"), py::arg("last_n") = 64, py::arg("repeat") = 1.0f, py::arg("freq") = 0.0f, py::arg("present") = 0.0f)
        .def("add_logit_bias", [](ChainHandle & c, const ModelHandle & model, const std::map<int32_t, float> & bias) {
            std::vector<llama_logit_bias> b;
            for (const auto & [t, v] : bias) { check_token(model, t); b.push_back({t, v}); }
            c.add(llama_sampler_init_logit_bias(model.n_vocab, static_cast<int32_t>(b.size()), b.data()), "logit_bias");
        }, py::arg("model"), py::arg("bias"))
        .def("add_grammar", [](ChainHandle & c, const ModelHandle & model, const std::string & gbnf, const std::string & root) {
            if (c.grammar) raise_value("this chain already has a grammar");
            check_nesting(gbnf, '(', ')', '[', ']', "grammar");
            // llama_sampler_init_grammar: nullptr when the grammar does not parse.
            llama_sampler * g = llama_sampler_init_grammar(model.vocab, gbnf.c_str(), root.c_str());
            c.add(g, "grammar (GBNF does not parse)");
            c.grammar = g;
            c.n_vocab = model.n_vocab;
        }, py::arg("model"), py::arg("gbnf"), py::arg("root") = "root")
        .def("__len__", [](const ChainHandle & c) { return llama_sampler_chain_n(c.chain); })
        .def("sample", [](ChainHandle & c, ContextHandle & ctx, int32_t idx) {
            std::lock_guard<std::mutex> lock(ctx.mutex);
            check_sample_index(ctx, idx);
            // What llama_sampler_sample does, without its abort when no sampler of the chain
            // selects a token or the grammar leaves nothing allowed.
            const float * logits = llama_get_logits_ith(ctx.ctx, idx);
            if (!logits) raise_index("no logits for batch index " + std::to_string(idx));
            const int32_t n = ctx.model->n_vocab;
            std::vector<llama_token_data> cur(n);
            for (int32_t t = 0; t < n; ++t) cur[t] = llama_token_data{t, logits[t], 0.0f};
            llama_token_data_array arr{cur.data(), cur.size(), -1, false};
            llama_sampler_apply(c.chain, &arr);
            if (arr.selected < 0 || arr.selected >= static_cast<int64_t>(arr.size)) {
                raise_value("the chain selected no token: end it with greedy, dist or mirostat");
            }
            const llama_token token = arr.data[arr.selected].id;
            if (c.grammar && !std::isfinite(arr.data[arr.selected].logit)) {
                raise_value("the grammar allows no token here");
            }
            llama_sampler_accept(c.chain, token);
            return token;
        }, py::arg("ctx"), py::arg("idx") = -1, "sample a token and accept it")
        .def("accept", [](ChainHandle & c, int32_t token) {
            if (token < 0) raise_index("token id " + std::to_string(token) + " out of range");
            // llama.cpp aborts when a grammar is fed a token it does not allow: vet it first.
            if (c.grammar) {
                if (token >= c.n_vocab) raise_index("token id " + std::to_string(token) + " out of range");
                if (!grammar_allows(c.grammar, token)) {
                    raise_value("token " + std::to_string(token) + " is not allowed by the grammar here");
                }
            }
            llama_sampler_accept(c.chain, token);
        }, py::arg("token"))
        .def("reset", [](ChainHandle & c) { llama_sampler_reset(c.chain); })
        .def_property_readonly("seed", [](const ChainHandle & c) { return llama_sampler_get_seed(c.chain); });

    py::class_<CommonSamplerHandle, std::shared_ptr<CommonSamplerHandle>>(m, "CommonSampler")
        .def(py::init(&make_common_sampler), py::arg("model"), py::arg("seed") = LLAMA_DEFAULT_SEED,
             py::arg("temperature") = 0.8f, py::arg("top_k") = 40, py::arg("top_p") = 0.9f, py::arg("min_p") = 0.0f,
             py::arg("typical_p") = 1.0f, py::arg("repeat_last_n") = 64, py::arg("repeat_penalty") = 1.0f,
             py::arg("presence_penalty") = 0.0f, py::arg("frequency_penalty") = 0.0f, py::arg("mirostat") = 0,
             py::arg("mirostat_tau") = 5.0f, py::arg("mirostat_eta") = 0.1f, py::arg("grammar") = "",
             py::arg("grammar_kind") = "user", py::arg("grammar_lazy") = false,
             py::arg("grammar_triggers") = std::vector<py::dict>(), py::arg("preserved_tokens") = std::vector<int32_t>(),
             py::arg("generation_prompt") = "", py::arg("logit_bias") = std::map<int32_t, float>(),
             py::arg("n_probs") = 0, "common_sampler_init (raises ValueError for a grammar that does not parse)")
        .def("sample", [](CommonSamplerHandle & s, ContextHandle & ctx, int32_t idx, bool grammar_first) {
            std::lock_guard<std::mutex> lock(ctx.mutex);
            if (ctx.model.get() != s.model.get()) raise_value("sampler and context belong to different models");
            check_sample_index(ctx, idx);
            try {
                s.last_sampled = sample_one(s, ctx, idx, grammar_first);
                return s.last_sampled;
            } catch (const std::exception & e) {
                raise_runtime(std::string("sampling failed: ") + e.what());
            }
        }, py::arg("ctx"), py::arg("idx") = -1, py::arg("grammar_first") = false, "common_sampler_sample (does not accept)")
        .def("accept", [](CommonSamplerHandle & s, int32_t token, bool is_generated) {
            check_token(*s.model, token);
            // The grammar inside the common sampler aborts on a token it does not allow; the
            // token sample() just returned is the one known to be allowed.
            if (s.has_grammar && is_generated && token != s.last_sampled) {
                raise_value("with a grammar, accept only the token sample() returned");
            }
            s.last_sampled = LLAMA_TOKEN_NULL;
            try {
                common_sampler_accept(s.smpl, token, is_generated);
            } catch (const std::exception & e) {
                raise_value(std::string("token rejected by grammar: ") + e.what());
            }
        }, py::arg("token"), py::arg("is_generated") = true)
        .def("reset", [](CommonSamplerHandle & s) { common_sampler_reset(s.smpl); })
        .def_property_readonly("seed", [](const CommonSamplerHandle & s) { return common_sampler_get_seed(s.smpl); })
        .def_readonly("greedy", &CommonSamplerHandle::greedy, "True when sampling is a plain argmax (fast path)");

    // Samples one token for each (sampler, batch index) pair after one decode, and accepts it: the
    // per-step work of continuous batching in one native call.
    m.def("sample_many", [](ContextHandle & ctx, const std::vector<std::shared_ptr<CommonSamplerHandle>> & samplers,
                            const std::vector<int32_t> & idxs) {
        if (samplers.size() != idxs.size()) raise_value("samplers and indices differ in length");
        std::lock_guard<std::mutex> lock(ctx.mutex);
        for (size_t k = 0; k < samplers.size(); ++k) {
            if (!samplers[k] || samplers[k]->model.get() != ctx.model.get()) raise_value("sampler belongs to another model");
            check_sample_index(ctx, idxs[k]);
        }
        std::vector<llama_token> out(samplers.size());
        {
            py::gil_scoped_release release;
            for (size_t k = 0; k < samplers.size(); ++k) {
                // A sampler that fails (e.g. a grammar with no allowed token) yields -1 for its
                // sequence alone; the others in the batch go on.
                try {
                    out[k] = sample_one(*samplers[k], ctx, idxs[k], false);
                    common_sampler_accept(samplers[k]->smpl, out[k], true);
                } catch (const std::exception &) {
                    out[k] = -1;
                }
            }
        }
        return out;
    }, py::arg("ctx"), py::arg("samplers"), py::arg("idxs"));

    m.def("json_schema_to_grammar", [](const std::string & schema) {
        check_nesting(schema, '{', '}', '[', ']', "JSON schema");
        try {
            return json_schema_to_grammar(common_json::parse(schema), true);
        } catch (const std::exception & e) {
            raise_value(e.what());
        }
    }, py::arg("schema_json"), "json_schema_to_grammar (common): GBNF for a JSON schema; ValueError when unsupported");
}

}  // namespace pyollama
