#include "core/TensorCopier.h"

namespace sw {

Tensor TensorCopier::toHost(const Tensor& t) {
  if (t.device().isCpu()) return t;
  Tensor h = Tensor::empty(t.shape());
  copy(t, h);
  return h;
}

}  // namespace sw
