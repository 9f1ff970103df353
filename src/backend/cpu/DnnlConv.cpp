#include "backend/cpu/DnnlConv.h"

#include <oneapi/dnnl/dnnl.hpp>

#include <cstring>
#include <optional>
#include <string>
#include <unordered_map>

#include "core/Error.h"

namespace sw {
namespace {

using dnnl::memory;
using Tag = memory::format_tag;
using Dt = memory::data_type;

enum ScratchIdx : size_t { kSrc = 2, kWei = 3, kDst = 4, kPad = 5, kDy = 6 };

size_t floatsOf(const memory::desc& d) { return (d.get_size() + sizeof(float) - 1) / sizeof(float); }

bool optimized(const char* impl) {
  const std::string s = impl ? impl : "";
  return s.find("ref") == std::string::npos && s.find("gemm") == std::string::npos;
}

}  // namespace

struct DnnlConv::Impl {
  explicit Impl(Scratch s) : scratch(std::move(s)), eng(dnnl::engine::kind::cpu, 0), strm(eng) {}

  struct Entry {
    memory::desc x, w, b, y;  // user (plain) layouts
    // Forward without and with bias (the backward passes take the former as their hint).
    dnnl::convolution_forward::primitive_desc fpd, fpdBias;
    dnnl::convolution_backward_data::primitive_desc dpd;
    dnnl::convolution_backward_weights::primitive_desc wpd;
    dnnl::convolution_forward fwd, fwdBias;
    dnnl::convolution_backward_data bwdData;
    dnnl::convolution_backward_weights bwdWeights;
    bool ok = false;
  };

  // One entry per geometry; ok only when every pass has an optimized kernel, so that supports()
  // answers for all of them.
  Entry& entry(const ConvGeom& g) {
    const std::string key = g.key();
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    Entry e;
    const memory::dims xd{g.n, g.c, g.h, g.w}, wd{g.k, g.c, g.r, g.s}, yd{g.n, g.k, g.oh, g.ow};
    const memory::dims st{g.stride, g.stride}, pad{g.pad, g.pad};
    // Padding on the right as PyTorch/our im2col use it: output size fixed by g.oh/g.ow.
    const memory::dims padR{(g.oh - 1) * g.stride + g.r - g.h - g.pad,
                            (g.ow - 1) * g.stride + g.s - g.w - g.pad};
    e.x = memory::desc(xd, Dt::f32, Tag::nchw);
    e.w = memory::desc(wd, Dt::f32, Tag::oihw);
    e.y = memory::desc(yd, Dt::f32, Tag::nchw);
    e.b = memory::desc({g.k}, Dt::f32, Tag::a);
    const memory::desc xa(xd, Dt::f32, Tag::any), wa(wd, Dt::f32, Tag::any), ya(yd, Dt::f32, Tag::any);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const auto alg = dnnl::algorithm::convolution_direct;
    try {
      const auto fwdKind = dnnl::prop_kind::forward_training;
      e.fpd = dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(fwdKind, alg, xa, wa, ya, st, pad, padR), attr, eng);
      e.fpdBias = dnnl::convolution_forward::primitive_desc(
          dnnl::convolution_forward::desc(fwdKind, alg, xa, wa, e.b, ya, st, pad, padR), attr, eng);
      dnnl::convolution_backward_data::desc dd(alg, xa, wa, ya, st, pad, padR);
      e.dpd = dnnl::convolution_backward_data::primitive_desc(dd, attr, eng, e.fpd);
      dnnl::convolution_backward_weights::desc wdsc(alg, xa, wa, ya, st, pad, padR);
      e.wpd = dnnl::convolution_backward_weights::primitive_desc(wdsc, attr, eng, e.fpd);
      e.ok = optimized(e.fpd.impl_info_str()) && optimized(e.fpdBias.impl_info_str()) &&
             optimized(e.dpd.impl_info_str()) && optimized(e.wpd.impl_info_str());
      if (e.ok) {
        e.fwd = dnnl::convolution_forward(e.fpd);
        e.fwdBias = dnnl::convolution_forward(e.fpdBias);
        e.bwdData = dnnl::convolution_backward_data(e.dpd);
        e.bwdWeights = dnnl::convolution_backward_weights(e.wpd);
      }
    } catch (const dnnl::error&) {
      e.ok = false;
    }
    return cache.emplace(key, std::move(e)).first->second;
  }

  // Reorder primitives, cached by (source, destination, accumulate) layouts.
  dnnl::reorder& reorderPrim(const memory::desc& from, const memory::desc& to, bool sum) {
    for (auto& r : reorders)
      if (r.sum == sum && r.from == from && r.to == to) return r.prim;
    dnnl::primitive_attr attr;
    if (sum) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    reorders.push_back({from, to, sum, dnnl::reorder(dnnl::reorder::primitive_desc(eng, from, eng, to, attr))});
    return reorders.back().prim;
  }

  // Memory in layout `want` holding the user data `ptr` (layout `have`): the user buffer itself
  // when the layouts agree, else a reordered copy in scratch slot idx.
  memory input(const memory::desc& have, const memory::desc& want, const float* ptr, size_t idx) {
    memory user(have, eng, const_cast<float*>(ptr));
    if (have == want) return user;
    memory m(want, eng, scratch(idx, floatsOf(want)));
    reorderPrim(have, want, false).execute(strm, user, m);
    return m;
  }

  // Output memory in layout `kernel` for user buffer ptr (layout `have`); when they differ the
  // kernel writes scratch and finish() reorders (adding when acc) into the user buffer.
  memory output(const memory::desc& have, const memory::desc& kernel, float* ptr, Accumulate acc,
                size_t idx) {
    if (have == kernel && acc == Accumulate::kNo) return memory(have, eng, ptr);
    return memory(kernel, eng, scratch(idx, floatsOf(kernel)));
  }
  void finish(const memory& out, const memory::desc& have, float* ptr, Accumulate acc) {
    if (out.get_data_handle() == ptr) return;
    memory user(have, eng, ptr);
    reorderPrim(out.get_desc(), have, acc == Accumulate::kYes).execute(strm, const_cast<memory&>(out), user);
  }

  memory pad(const memory::desc& d) { return memory(d, eng, scratch(kPad, floatsOf(d) + 16)); }

  Scratch scratch;
  dnnl::engine eng;
  dnnl::stream strm;
  std::unordered_map<std::string, Entry> cache;
  struct Reorder {
    memory::desc from, to;
    bool sum;
    dnnl::reorder prim;
  };
  std::vector<Reorder> reorders;
};

DnnlConv::DnnlConv(Scratch scratch) : impl_(std::make_unique<Impl>(std::move(scratch))) {}
DnnlConv::~DnnlConv() = default;

bool DnnlConv::supports(const ConvGeom& g) { return impl_->entry(g).ok; }

void DnnlConv::forward(const float* x, const float* w, const float* bias, float* y,
                       const ConvGeom& g) {
  Impl& I = *impl_;
  Impl::Entry& e = I.entry(g);
  SW_CHECK(e.ok, "DnnlConv: no optimized kernel for conv " + g.key());
  const auto& pd = bias ? e.fpdBias : e.fpd;
  memory xm = I.input(e.x, pd.src_desc(), x, kSrc);
  memory wm = I.input(e.w, pd.weights_desc(), w, kWei);
  memory ym = I.output(e.y, pd.dst_desc(), y, Accumulate::kNo, kDst);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm},
                                       {DNNL_ARG_WEIGHTS, wm},
                                       {DNNL_ARG_DST, ym},
                                       {DNNL_ARG_SCRATCHPAD, I.pad(pd.scratchpad_desc())}};
  if (bias) args.emplace(DNNL_ARG_BIAS, memory(e.b, I.eng, const_cast<float*>(bias)));
  (bias ? e.fwdBias : e.fwd).execute(I.strm, args);
  I.finish(ym, e.y, y, Accumulate::kNo);
  I.strm.wait();
}

void DnnlConv::backward(const float* x, const float* dy, const float* w, float* dw,
                        Accumulate accW, float* dx, Accumulate accX, const ConvGeom& g) {
  Impl& I = *impl_;
  Impl::Entry& e = I.entry(g);
  SW_CHECK(e.ok, "DnnlConv: no optimized kernel for conv " + g.key());
  std::optional<memory> dyW;
  if (dw) {
    memory xm = I.input(e.x, e.wpd.src_desc(), x, kSrc);
    dyW = I.input(e.y, e.wpd.diff_dst_desc(), dy, kDy);
    memory dwm = I.output(e.w, e.wpd.diff_weights_desc(), dw, accW, kWei);
    e.bwdWeights.execute(I.strm, {{DNNL_ARG_SRC, xm},
                                  {DNNL_ARG_DIFF_DST, *dyW},
                                  {DNNL_ARG_DIFF_WEIGHTS, dwm},
                                  {DNNL_ARG_SCRATCHPAD, I.pad(e.wpd.scratchpad_desc())}});
    I.finish(dwm, e.w, dw, accW);
  }
  if (dx) {
    // dy in the layout backward-data wants: the copy made above when the layouts agree.
    memory dym = dyW && dyW->get_desc() == e.dpd.diff_dst_desc()
                     ? *dyW
                     : I.input(e.y, e.dpd.diff_dst_desc(), dy, kDst);
    memory wm = I.input(e.w, e.dpd.weights_desc(), w, kWei);
    memory dxm = I.output(e.x, e.dpd.diff_src_desc(), dx, accX, kSrc);
    e.bwdData.execute(I.strm, {{DNNL_ARG_DIFF_DST, dym},
                               {DNNL_ARG_WEIGHTS, wm},
                               {DNNL_ARG_DIFF_SRC, dxm},
                               {DNNL_ARG_SCRATCHPAD, I.pad(e.dpd.scratchpad_desc())}});
    I.finish(dxm, e.x, dx, accX);
  }
  I.strm.wait();
}

}  // namespace sw
