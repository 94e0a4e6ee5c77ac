// deepseek2 test helpers shared by the CPU and GPU tests.
#pragma once
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/gguf/gguf.h"
#include "engine/tensor/kernels.h"

namespace sluice {

// A file as converted before llama.cpp split attn_kv_b (no *_mla keys; key_length/value_length are the
// per-head sizes): src's attn_k_b / attn_v_b joined back into one F32 attn_kv_b, written to out.
inline void write_legacy_kv_b(const std::string& src_path, const std::string& out) {
    const auto src = gguf::File::open(src_path);
    const int64_t kvl = int64_t(src->get_uint("deepseek2.attention.kv_lora_rank"));
    const int64_t nope = int64_t(src->get_uint("deepseek2.attention.key_length_mla") - src->get_uint("deepseek2.rope.dimension_count"));
    const int64_t nv = int64_t(src->get_uint("deepseek2.attention.value_length_mla"));
    const int64_t nh = int64_t(src->get_uint("deepseek2.attention.head_count"));
    {
        gguf::Writer w(out);
        for (const auto& [k, v] : src->metadata()) {
            if (k.find("length_mla") != std::string::npos) continue;
            if (k == "deepseek2.attention.key_length") w.set_u32(k, uint32_t(src->get_uint("deepseek2.attention.key_length_mla")));
            else if (k == "deepseek2.attention.value_length") w.set_u32(k, uint32_t(nv));
            else w.set(k, v);
        }
        auto is = [](const gguf::TensorInfo& t, const char* suffix) {
            return t.name.size() > std::strlen(suffix) && t.name.compare(t.name.size() - std::strlen(suffix), std::string::npos, suffix) == 0;
        };
        std::vector<const gguf::TensorInfo*> order;
        for (const auto& t : src->tensors()) {
            if (is(t, "attn_v_b.weight")) continue;
            order.push_back(&t);
            if (is(t, "attn_k_b.weight"))
                w.add_tensor(t.name.substr(0, t.name.size() - std::strlen("attn_k_b.weight")) + "attn_kv_b.weight",
                             GgmlType::F32, {kvl, nh * (nope + nv)});
            else
                w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims));
        }
        w.begin_data();
        for (const gguf::TensorInfo* t : order) {
            if (!is(*t, "attn_k_b.weight")) {
                w.write_data(src->data(*t), t->nbytes);
                continue;
            }
            const std::string vb_name = t->name.substr(0, t->name.size() - std::strlen("attn_k_b.weight")) + "attn_v_b.weight";
            std::vector<float> kb(size_t(t->n_elements())), vb(size_t(kvl * nv * nh));
            dequantize_row(t->type, src->data(*t), kb.data(), t->n_elements());
            const gguf::TensorInfo* v = src->find_tensor(vb_name);
            ASSERT_NE(v, nullptr);
            dequantize_row(v->type, src->data(*v), vb.data(), v->n_elements());
            std::vector<float> kv(size_t(kvl * nh * (nope + nv)));
            for (int64_t h = 0; h < nh; ++h) {
                for (int64_t d = 0; d < nope; ++d)  // k_b (nope, kvl, nh): row d of head h's keys
                    for (int64_t c = 0; c < kvl; ++c) kv[size_t((h * (nope + nv) + d) * kvl + c)] = kb[size_t((h * kvl + c) * nope + d)];
                for (int64_t j = 0; j < nv; ++j)    // v_b (kvl, nv, nh)
                    for (int64_t c = 0; c < kvl; ++c) kv[size_t((h * (nope + nv) + nope + j) * kvl + c)] = vb[size_t((h * nv + j) * kvl + c)];
            }
            w.write_data(kv.data(), kv.size() * 4);
        }
        w.finish();
    }
}

}  // namespace sluice
