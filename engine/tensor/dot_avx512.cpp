#include "engine/tensor/kernels_isa.h"
namespace sluice::detail {
DotFn avx512_dot(GgmlType) { return nullptr; }
PrepareFn avx512_prepare(GgmlType) { return nullptr; }
DequantFn avx512_dequant(GgmlType) { return nullptr; }
}
