#include "engine/gguf/requantize.h"

#include <vector>

#include "engine/error.h"
#include "engine/gguf/gguf.h"
#include "engine/gguf/quant_plan.h"
#include "engine/tensor/kernels.h"

namespace sluice {

int requantize_file(const std::string& in_path, const std::string& out_path, GgmlType want,
                    const std::function<void(const std::string&)>& log,
                    const std::function<GgmlType(const std::string& name, GgmlType planned)>& pick) {
    if (!type_info(want).has_kernels) throw Error(std::string("cannot write type ") + type_name(want));
    auto in = gguf::File::open(in_path);
    gguf::Writer w(out_path, in->alignment());
    for (const auto& [k, v] : in->metadata()) w.set(k, v);
    w.set_u32("general.file_type", file_type_of(want));

    std::vector<GgmlType> out_types;
    int fallbacks = 0;
    for (const gguf::TensorInfo& t : in->tensors()) {
        if (!type_info(t.type).has_kernels)
            throw Error(in->path() + ": tensor '" + t.name + "' has type " + type_name(t.type) +
                        ", which sluice cannot convert");
        const GgmlType ot = plan_type(t.name, t.ne, t.n_dims, want);
        if (ot != want && ot != GgmlType::F32) {
            if (log)
                log(t.name + ": rows of " + std::to_string(t.ne[0]) + " don't fit " + type_name(want) +
                    " blocks, using " + type_name(ot));
            ++fallbacks;
        }
        out_types.push_back(pick ? pick(t.name, ot) : ot);
        if (!type_info(out_types.back()).has_kernels) throw Error(std::string("cannot write type ") + type_name(out_types.back()));
        w.add_tensor(t.name, out_types.back(), std::vector<int64_t>(t.ne, t.ne + t.n_dims));
    }
    w.begin_data();
    std::vector<float> row;
    std::vector<uint8_t> qrow;
    for (size_t i = 0; i < in->tensors().size(); ++i) {
        const gguf::TensorInfo& t = in->tensors()[i];
        const int64_t cols = t.ne[0], rows = t.n_elements() / cols;
        const int64_t in_rb = row_bytes(t.type, cols), out_rb = row_bytes(out_types[i], cols);
        row.resize(size_t(cols));
        qrow.resize(size_t(out_rb));
        for (int64_t r = 0; r < rows; ++r) {
            dequantize_row(t.type, in->data(t) + r * in_rb, row.data(), cols);
            quantize_row(out_types[i], row.data(), qrow.data(), cols);
            w.write_data(qrow.data(), qrow.size());
        }
    }
    w.finish();
    return fallbacks;
}

}  // namespace sluice
