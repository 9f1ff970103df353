// Parle (Chaudhari et al., "Parle: parallelizing stochastic gradient descent", SysML 2018,
// arXiv 1707.00424) and its special cases Elastic-SGD (L = 0) and Entropy-SGD (one replica,
// rho = 0): the update rule of ONE replica (one pipeline stage of it), with the replica average
// supplied from outside. The rule never communicates: a synchronisation is
//   prepareSync() -> the caller averages syncBuffer() over the replicas (one allreduce) ->
//   finishSync(lr),
// so the mathematics is testable on one process and the allreduce lives with the communicators.
// Two reference codes are reproduced exactly (../shared/spec/seed-parle.md):
//   kOptim2017 (section 3, distributed-ensembles optim.Parle, the paper's numbers): per outer step
//     t += 1; gamma = min(g0 (1+g)^t, gmax), rho = min(g1 (1+g)^t, rmax); w_c <- w, m <- w;
//     L inner steps d = grad + wd w + gamma (w - w_c), PyTorch momentum at the inner lr,
//     m <- beta1 m + (1 - beta1) w; r = mean_b m^b; D = (w_c - m) + rho (w_c - r);
//     w <- w_c - lr (D + mu v_out) (PyTorch Nesterov form). L = 0: every mini-batch
//     d = grad + wd w + rho (w - r) with r = mean_b w^b, one SGD step at the scheduled lr.
//   kMpi2018 (section 2, ucla-vision/parle parle_mpi.py): Nesterov-A momentum v <- c v + d,
//     step d + v in both loops; gamma, rho with exponent floor(t / L), t += counterStep per inner
//     step; z <- alpha z + (1 - alpha) y never reset; the sync moves the live iterate y (not the
//     anchor) along (x - z) + rho (x - mean_b z^b), then x <- y.
// The master (the deliverable) is the mean of the replicas' anchors.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/Layer.h"
#include "optim/Optimizer.h"

namespace sw {

enum class ParleVariant { kOptim2017, kMpi2018 };

struct ParleOptions {
  ParleVariant variant = ParleVariant::kOptim2017;
  int L = 25;                  // inner steps per synchronisation; 0 = Elastic-SGD (kOptim2017)
  double gamma0 = 0.01;        // proximal coupling at t = 0
  double rho0 = 1.0;           // elastic coupling at t = 0 (kMpi2018: already rho_cli * L * n)
  double gammaMax = 1.0, rhoMax = 10.0;
  double growth = 0.0;         // scoping: couplings grow by (1 + growth) per counter unit
  float innerLr = 0.f;         // > 0: fixed inner learning rate; 0: the scheduled rate
  float beta1 = 0.f;           // weight of the old average (kOptim2017 m, kMpi2018 alpha of z)
  float outerMomentum = 0.9f;  // kOptim2017 outer momentum (kMpi2018 uses the inner optimizer's)
  int64_t counterStep = 1;     // kMpi2018: t increment per inner step (P_T = released code's bug)
};

// Closed forms of the annealed couplings ("scoping").
// kOptim2017: outer step t (1, 2, ...): min(c0 (1 + growth)^t, cmax).
// kMpi2018:   counter t after the inner steps: min(c0 (1 + growth)^floor(t / L), cmax).
double parleScoped(ParleVariant v, double c0, double cmax, double growth, int64_t t, int L);

struct ParleState {
  int64_t t = 0;            // scoping counter (see parleScoped)
  int64_t stepInBlock = 0;  // inner steps since the last synchronisation
  int64_t syncs = 0;        // synchronisations done
  double gamma = 0, rho = 0;  // couplings in use (the last computed)
};

class ParleOptimizer {
 public:
  // params: this replica's (stage's) parameters; inner: the optimizer the inner steps use
  // (kOptim2017: its SGD momentum is the inner buffer, or with L = 0 the only buffer; kMpi2018:
  // only its momentum, weight decay and decay exclusions are read).
  ParleOptimizer(Backend& be, std::vector<Param*> params, Optimizer& inner, ParleOptions opts);

  // One inner step on the accumulated gradients (the program's OptimizerStep). `lr` is the
  // scheduled learning rate; gradients are multiplied by gradScale first.
  void innerStep(float lr, float gradScale);
  // The host buffer averaged over the replicas at a sync, filled by prepareSync() (L >= 1: the
  // inner averages m / z; L = 0: the weights).
  Tensor& syncBuffer() { return flat_; }
  void prepareSync();
  // syncBuffer() now holds the replica mean. L >= 1: the outer step at `lr`. L = 0: keeps the
  // mean for the coupling of the next innerStep().
  void finishSync(float lr);
  // Writes this replica's anchors into `flat` (host, numel() floats) for the master average.
  void packAnchors(Tensor& flat);
  int64_t numel() const { return numel_; }

  const ParleOptions& options() const { return o_; }
  ParleState& state() { return st_; }
  const ParleState& state() const { return st_; }
  // Per-parameter state tensors by name ("anchor", "avg", "v_in", "v_out"), for checkpoints.
  // Undefined tensors are not materialised in this configuration or not yet allocated.
  struct Slot {
    Tensor anchor, avg, vIn, vOut;
  };
  std::vector<Slot>& slots() { return slots_; }
  const std::vector<Param*>& params() const { return params_; }

 private:
  bool keepsAverage() const;
  void beginBlock();
  float innerRate(float lr) const { return o_.innerLr > 0.f ? o_.innerLr : lr; }
  float decayOf(const Param& p) const;
  Tensor scratch(int which, const Shape& s);
  Tensor meanOf(size_t i);  // parameter i's slice of flat_, on the backend's device

  Backend& be_;
  std::vector<Param*> params_;
  Optimizer& inner_;
  ParleOptions o_;
  ParleState st_;
  std::vector<Slot> slots_;
  std::vector<int64_t> offsets_;
  int64_t numel_ = 0;
  Tensor flat_;           // host, numel_ floats
  Tensor scratch_[2];     // device, the largest parameter
};

}  // namespace sw
