// Reference dumper built on libllama: tokenization and greedy generation with top logits, as JSON.
//   refdump tok MODEL LINES            each line of LINES (\n and \\ escapes) tokenized both ways
//   refdump gen MODEL PROMPTS N [DIR]  greedy N tokens per prompt, top-10 logits per step; full logits of
//                                      the first step written to DIR/logits_pK.f32
// Context: n_ctx 4096, n_batch 512, 2 threads, flash attention auto (on for the CPU).
//
// This is /work/shared/reference/refdump.cpp (the generator of tests/fixtures/generation/) with one
// addition: the KV cache type comes from the environment, REFDUMP_CACHE_TYPE=f16 (default) | f32 |
// q8_0, applied to both K and V. tests/fixtures/kv_q8_0/ was made with REFDUMP_CACHE_TYPE=q8_0.
// Build (see tests/fixtures/kv_q8_0/README.md):
//   L=~/.cache/hearth-reference/src/vendor/llama.cpp; D=~/.cache/hearth-reference
//   g++ -O2 -std=c++17 scripts/refdump-cache-types.cpp -I$L/include -I$L/ggml/include \
//       -L$D/bin -lllama -lggml -lggml-base -Wl,-rpath,$D/bin -o refdump-cache-types
#include "llama.h"
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>
#include <fstream>
#include <algorithm>
#include <cmath>
#include <cstdlib>

static ggml_type cache_type_from_env() {
    const char *s = getenv("REFDUMP_CACHE_TYPE");
    std::string t = s ? s : "f16";
    if (t == "f16") return GGML_TYPE_F16;
    if (t == "f32") return GGML_TYPE_F32;
    if (t == "q8_0") return GGML_TYPE_Q8_0;
    fprintf(stderr, "REFDUMP_CACHE_TYPE: unknown cache type %s (f16, f32, q8_0)\n", t.c_str());
    exit(1);
}

static std::string jesc(const std::string &s) {
    std::string o; char buf[8];
    for (unsigned char c : s) {
        switch (c) {
            case '"': o += "\\\""; break; case '\\': o += "\\\\"; break;
            case '\n': o += "\\n"; break; case '\r': o += "\\r"; break; case '\t': o += "\\t"; break;
            default: if (c < 0x20) { snprintf(buf, sizeof buf, "\\u%04x", c); o += buf; } else o += (char)c;
        }
    }
    return o;
}
static std::string unesc(const std::string &s) { // lines use \n and \\ escapes
    std::string o;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] == '\\' && i + 1 < s.size()) { char n = s[++i]; if (n == 'n') o += '\n'; else if (n == 't') o += '\t'; else o += n; }
        else o += s[i];
    }
    return o;
}
static std::vector<llama_token> tok(const llama_vocab *v, const std::string &t, bool add, bool parse) {
    std::vector<llama_token> ids(t.size() + 16);
    int n = llama_tokenize(v, t.c_str(), t.size(), ids.data(), ids.size(), add, parse);
    if (n < 0) { ids.resize(-n); n = llama_tokenize(v, t.c_str(), t.size(), ids.data(), ids.size(), add, parse); }
    ids.resize(n); return ids;
}
static std::string piece(const llama_vocab *v, llama_token t) {
    char buf[256]; int n = llama_token_to_piece(v, t, buf, sizeof buf, 0, true); return std::string(buf, n > 0 ? n : 0);
}
static void ids_json(const std::vector<llama_token> &ids) {
    printf("["); for (size_t i = 0; i < ids.size(); i++) printf(i ? ",%d" : "%d", ids[i]); printf("]");
}
int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: refdump tok|gen MODEL FILE [n_gen] [logits_dir]\n"); return 1; }
    std::string mode = argv[1];
    llama_backend_init();
    auto mp = llama_model_default_params();
    mp.vocab_only = (mode == "tok");
    llama_model *model = llama_model_load_from_file(argv[2], mp);
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    const llama_vocab *v = llama_model_get_vocab(model);
    std::ifstream in(argv[3]); std::vector<std::string> lines; std::string line;
    while (std::getline(in, line)) if (!line.empty()) lines.push_back(unesc(line));
    if (mode == "tok") {
        printf("[\n");
        for (size_t i = 0; i < lines.size(); i++) {
            auto a = tok(v, lines[i], false, false), b = tok(v, lines[i], true, true);
            printf("  {\"text\": \"%s\", \"ids\": ", jesc(lines[i]).c_str()); ids_json(a);
            printf(", \"ids_add_special_parse_special\": "); ids_json(b);
            std::string back; for (auto t : a) back += piece(v, t);
            printf(", \"detok\": \"%s\"}%s\n", jesc(back).c_str(), i + 1 < lines.size() ? "," : "");
        }
        printf("]\n"); return 0;
    }
    int n_gen = argc > 4 ? atoi(argv[4]) : 16;
    std::string ldir = argc > 5 ? argv[5] : "";
    auto cp = llama_context_default_params();
    cp.n_ctx = 4096; cp.n_batch = 512; cp.n_threads = 2; cp.n_threads_batch = 2;
    cp.type_k = cache_type_from_env(); cp.type_v = cp.type_k;
    llama_context *ctx = llama_init_from_model(model, cp);
    int nv = llama_vocab_n_tokens(v);
    printf("[\n");
    for (size_t pi = 0; pi < lines.size(); pi++) {
        llama_memory_clear(llama_get_memory(ctx), true);
        auto ids = tok(v, lines[pi], true, true);
        std::vector<llama_token> out;
        printf("  {\"prompt\": \"%s\", \"prompt_ids\": ", jesc(lines[pi]).c_str()); ids_json(ids);
        printf(", \"steps\": [\n");
        llama_batch batch = llama_batch_get_one(ids.data(), ids.size());
        if (llama_decode(ctx, batch)) { fprintf(stderr, "decode failed\n"); return 1; }
        std::string text;
        for (int s = 0; s < n_gen; s++) {
            float *lg = llama_get_logits_ith(ctx, -1);
            if (s == 0 && !ldir.empty()) {
                std::string fn = ldir + "/logits_p" + std::to_string(pi) + ".f32";
                FILE *f = fopen(fn.c_str(), "wb"); fwrite(lg, sizeof(float), nv, f); fclose(f);
            }
            std::vector<int> idx(nv); for (int i = 0; i < nv; i++) idx[i] = i;
            std::partial_sort(idx.begin(), idx.begin() + 10, idx.end(), [&](int a, int b) { return lg[a] > lg[b]; });
            llama_token t = idx[0];
            printf("    {\"top\": [");
            for (int k = 0; k < 10; k++) printf(k ? ", [%d, %.5f]" : "[%d, %.5f]", idx[k], lg[idx[k]]);
            printf("]}%s\n", s + 1 < n_gen ? "," : "");
            out.push_back(t); text += piece(v, t);
            llama_token tt = t; llama_batch b1 = llama_batch_get_one(&tt, 1);
            if (llama_decode(ctx, b1)) { fprintf(stderr, "decode failed\n"); return 1; }
        }
        printf("  ], \"greedy_ids\": "); ids_json(out);
        printf(", \"greedy_text\": \"%s\"}%s\n", jesc(text).c_str(), pi + 1 < lines.size() ? "," : "");
    }
    printf("]\n");
    llama_free(ctx); llama_model_free(model); return 0;
}
