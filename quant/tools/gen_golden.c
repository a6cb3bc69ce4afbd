// Writes tests/fixtures/quant/golden/: ggml's own reference quantizers and generic dot
// products run on fixed inputs, so the Rust reference can be held to them byte for byte.
//
// Build against a llama.cpp checkout (plain x86-64 or aarch64, no -march: ggml's portable
// f16 conversion, no FMA contraction under -std=c11):
//   L=path/to/llama.cpp
//   gcc -O2 -std=c11 -I$L/ggml/include -I$L/ggml/src -I$L/ggml/src/ggml-cpu \
//       quant/tools/gen_golden.c $L/ggml/src/ggml-quants.c $L/ggml/src/ggml-cpu/quants.c -lm \
//       -o /tmp/gen_golden && /tmp/gen_golden tests/fixtures/quant
// It reads the IQ4_NL / IQ4_XS fixture blocks from that folder and writes:
//   golden/x.f32      4096 values 0.1 + 2 cos(i) (test-quantize-fns' data)
//   golden/y.f32      16384 activation-like values (uniform, outliers, an all-zero
//                     super-block, a block of exact rounding ties)
//   golden/TYPE.x.q / TYPE.y.q   quantize_row_TYPE_ref of x / y
//   golden/dots.txt   "TYPE bits" lines: ggml_vec_dot_TYPE_*_generic results as f32 bits

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-common.h"
#include "ggml-impl.h"
#include "ggml-quants.h"
#include "quants.h"

#define NX 4096
#define NY 16384

// What ggml-quants.c and ggml-cpu/quants.c want from ggml.c / ggml-cpu.c. The size and name
// hooks only feed return values and validation the reference paths never use.
void ggml_abort(const char * file, int line, const char * fmt, ...) {
    fprintf(stderr, "ggml_abort %s:%d %s\n", file, line, fmt);
    abort();
}
size_t ggml_row_size(enum ggml_type type, int64_t ne) { (void) type; (void) ne; return 0; }
size_t ggml_type_size(enum ggml_type type) { (void) type; return 0; }
const char * ggml_type_name(enum ggml_type type) { (void) type; return "?"; }
float ggml_table_f32_f16[1 << 16];  // filled in main with ggml's own conversion

static const char * dir;

static void write_file(const char * name, const void * data, size_t n) {
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/%s", dir, name);
    FILE * f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n) { perror(path); exit(1); }
    fclose(f);
}

static size_t read_file(const char * name, void * data, size_t cap) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE * f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    size_t n = fread(data, 1, cap, f);
    fclose(f);
    return n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float uniform(void) {  // [-1, 1)
    rng_state ^= rng_state >> 12; rng_state ^= rng_state << 25; rng_state ^= rng_state >> 27;
    uint64_t r = rng_state * 0x2545f4914f6cdd1dull;
    return (float)(r >> 40) / (float)(1 << 24) * 2.0f - 1.0f;
}

typedef void (*quantize_fn)(const float *, void *, int64_t);
typedef void (*dot_fn)(int, float *, size_t, const void *, size_t, const void *, size_t, int);

struct qtype { const char * name; quantize_fn quantize; size_t block_bytes; int block_elems; };

static const struct qtype QTYPES[] = {
    {"Q4_0", (quantize_fn) quantize_row_q4_0_ref, sizeof(block_q4_0), QK4_0},
    {"Q4_1", (quantize_fn) quantize_row_q4_1_ref, sizeof(block_q4_1), QK4_1},
    {"Q5_0", (quantize_fn) quantize_row_q5_0_ref, sizeof(block_q5_0), QK5_0},
    {"Q5_1", (quantize_fn) quantize_row_q5_1_ref, sizeof(block_q5_1), QK5_1},
    {"Q8_0", (quantize_fn) quantize_row_q8_0_ref, sizeof(block_q8_0), QK8_0},
    {"Q8_1", (quantize_fn) quantize_row_q8_1_ref, sizeof(block_q8_1), QK8_1},
    {"Q2_K", (quantize_fn) quantize_row_q2_K_ref, sizeof(block_q2_K), QK_K},
    {"Q3_K", (quantize_fn) quantize_row_q3_K_ref, sizeof(block_q3_K), QK_K},
    {"Q4_K", (quantize_fn) quantize_row_q4_K_ref, sizeof(block_q4_K), QK_K},
    {"Q5_K", (quantize_fn) quantize_row_q5_K_ref, sizeof(block_q5_K), QK_K},
    {"Q6_K", (quantize_fn) quantize_row_q6_K_ref, sizeof(block_q6_K), QK_K},
    {"Q8_K", (quantize_fn) quantize_row_q8_K_ref, sizeof(block_q8_K), QK_K},
    {"IQ4_NL", (quantize_fn) quantize_row_iq4_nl_ref, sizeof(block_iq4_nl), QK4_NL},
    {"IQ4_XS", (quantize_fn) quantize_row_iq4_xs_ref, sizeof(block_iq4_xs), QK_K},
};

static void * quantized(const char * name, const float * src, int n) {
    for (size_t t = 0; t < sizeof QTYPES / sizeof QTYPES[0]; t++) {
        const struct qtype * q = &QTYPES[t];
        if (strcmp(q->name, name) == 0) {
            size_t bytes = (size_t) n / q->block_elems * q->block_bytes;
            void * out = calloc(1, bytes);  // zeroed: Q8_K leaves bsums unset on zero blocks
            q->quantize(src, out, n);
            return out;
        }
    }
    abort();
}

int main(int argc, char ** argv) {
    if (argc != 2) { fprintf(stderr, "usage: gen_golden FIXTURE_DIR\n"); return 1; }
    dir = argv[1];
    for (int i = 0; i < (1 << 16); i++) ggml_table_f32_f16[i] = ggml_compute_fp16_to_fp32((ggml_fp16_t) i);
    static float x[NX], y[NY];
    for (int i = 0; i < NX; i++) x[i] = 0.1f + 2.0f * cosf((float) i);
    for (int i = 0; i < NY; i++) y[i] = uniform() * (i % 97 == 5 ? 20.0f : 1.0f);
    for (int i = 768; i < 1024; i++) y[i] = 0.0f;                  // an all-zero super-block
    for (int j = 0; j < 32; j++) y[128 + j] = (float)(j - 16) + 0.5f;  // ties once scaled
    y[128] = 127.0f;                                                 // makes d exactly 1
    write_file("x.f32", x, sizeof x);
    write_file("y.f32", y, sizeof y);

    char name[64];
    for (size_t t = 0; t < sizeof QTYPES / sizeof QTYPES[0]; t++) {
        const struct qtype * q = &QTYPES[t];
        void * qx = quantized(q->name, x, NX);
        void * qy = quantized(q->name, y, NY);
        snprintf(name, sizeof name, "%s.x.q", q->name);
        write_file(name, qx, NX / q->block_elems * q->block_bytes);
        snprintf(name, sizeof name, "%s.y.q", q->name);
        write_file(name, qy, NY / q->block_elems * q->block_bytes);
        free(qx); free(qy);
    }

    struct { const char * w; const char * act; dot_fn dot; } dots[] = {
        {"Q4_0", "Q8_0", ggml_vec_dot_q4_0_q8_0_generic},
        {"Q4_1", "Q8_1", ggml_vec_dot_q4_1_q8_1_generic},
        {"Q5_0", "Q8_0", ggml_vec_dot_q5_0_q8_0_generic},
        {"Q5_1", "Q8_1", ggml_vec_dot_q5_1_q8_1_generic},
        {"Q8_0", "Q8_0", ggml_vec_dot_q8_0_q8_0_generic},
        {"Q2_K", "Q8_K", ggml_vec_dot_q2_K_q8_K_generic},
        {"Q3_K", "Q8_K", ggml_vec_dot_q3_K_q8_K_generic},
        {"Q4_K", "Q8_K", ggml_vec_dot_q4_K_q8_K_generic},
        {"Q5_K", "Q8_K", ggml_vec_dot_q5_K_q8_K_generic},
        {"Q6_K", "Q8_K", ggml_vec_dot_q6_K_q8_K_generic},
        {"IQ4_NL", "Q8_0", ggml_vec_dot_iq4_nl_q8_0_generic},
        {"IQ4_XS", "Q8_K", ggml_vec_dot_iq4_xs_q8_K_generic},
    };
    char path[1024];
    snprintf(path, sizeof path, "%s/golden/dots.txt", dir);
    FILE * out = fopen(path, "w");
    if (!out) { perror(path); return 1; }
    for (size_t d = 0; d < sizeof dots / sizeof dots[0]; d++) {
        // Weights quantized from x (4096) against activations quantized from y[..4096]...
        void * w = quantized(dots[d].w, x, NX);
        void * a = quantized(dots[d].act, y, NY);
        float s;
        dots[d].dot(NX, &s, 0, w, 0, a, 0, 1);
        uint32_t bits; memcpy(&bits, &s, 4);
        fprintf(out, "%s x %08x\n", dots[d].w, bits);
        free(w);
        // ...and, where a fixture exists, fixture weights against y[..n].
        static uint8_t fx[1 << 20];
        snprintf(name, sizeof name, "%s.blocks", dots[d].w);
        size_t nb = read_file(name, fx, sizeof fx);
        int block_elems = 0; size_t block_bytes = 0;
        for (size_t t = 0; t < sizeof QTYPES / sizeof QTYPES[0]; t++) {
            if (strcmp(QTYPES[t].name, dots[d].w) == 0) {
                block_elems = QTYPES[t].block_elems; block_bytes = QTYPES[t].block_bytes;
            }
        }
        int n = (int)(nb / block_bytes) * block_elems;
        if (n <= NY) {
            dots[d].dot(n, &s, 0, fx, 0, a, 0, 1);
            memcpy(&bits, &s, 4);
            fprintf(out, "%s fixture %08x\n", dots[d].w, bits);
        }
        free(a);
    }
    fclose(out);
    return 0;
}
