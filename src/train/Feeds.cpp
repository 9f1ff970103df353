#include "train/Feeds.h"

#include "core/Error.h"

namespace sw {
namespace {
int64_t partBegin(int64_t n, int p, int m) { return int64_t(p) * n / m; }
}  // namespace

TrainFeed::TrainFeed(BatchLoader& loader, int microbatches, int64_t batchRows, int64_t firstBatch, int shards)
    : loader_(loader), m_(microbatches), batchRows_(batchRows), first_(firstBatch), shards_(shards) {}

int64_t TrainFeed::rowsOf(int mb) const {
  return std::min(batchRows_, loader_.shardSize() - (first_ + mb / m_) * batchRows_);
}

void TrainFeed::into(RoundInputs& ri) {
  ri.fetch = [this](int mb, Batch& out) {
    const int b = mb / m_, p = mb % m_;
    while (next_ <= b) {
      Batch nbatch;
      if (!loader_.next(nbatch)) throw Error("data loader ended early inside a round");
      fetched_[next_++] = std::move(nbatch);
    }
    const Batch& full = fetched_.at(b);
    const int64_t n = full.size();
    const int64_t r0 = partBegin(n, p, m_), r1 = partBegin(n, p + 1, m_);
    out.x = m_ == 1 ? full.x : full.x.slice(r0, r1);
    out.labels = m_ == 1 ? full.labels : full.labels.slice(r0, r1);
    if (p == m_ - 1) fetched_.erase(b);
  };
  ri.rows = [this](int mb) {
    const int64_t n = rowsOf(mb);
    return partBegin(n, mb % m_ + 1, m_) - partBegin(n, mb % m_, m_);
  };
  ri.lossWeight = [this, rows = ri.rows](int mb) {
    // Exactly 1 for equal shares (integers: the products are exact in double).
    const int64_t n = rowsOf(mb), g = loader_.globalRows(first_ + mb / m_);
    const double w = double(rows(mb)) * double(m_) / double(n) *
                     (shards_ > 1 ? double(n) * double(shards_) / double(g) : 1.0);
    return float(w);
  };
}

EvalFeed::EvalFeed(const Dataset& d, int64_t batch, Shard shard, int every, int offset, const AugmentSpec& aug,
                   uint64_t seed)
    : loader_(d, batch, seed, shard, aug, Shuffle::kNo, DropLast::kNo, Augment::kNo),
      batch_(batch),
      every_(every),
      offset_(offset) {
  loader_.seek(0, 0);
  shardRows_ = loader_.shardSize();
  const int64_t total = loader_.batchesPerEpoch();
  mine_ = total > offset_ ? (total - offset_ + every_ - 1) / every_ : 0;
}

void EvalFeed::into(RoundInputs& ri) {
  ri.phase = Phase::kEval;
  ri.fetch = [this](int mb, Batch& out) {
    for (const int64_t want = int64_t(mb) * every_ + offset_;;) {
      if (!loader_.next(out)) throw Error("evaluation loader ended early");
      if (next_++ == want) return;
    }
  };
  ri.rows = [this](int mb) { return std::min(batch_, shardRows_ - (int64_t(mb) * every_ + offset_) * batch_); };
  ri.lr = [](int) { return 0.f; };
}

}  // namespace sw
