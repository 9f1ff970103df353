// MetricsLog: appends one JSON object per line to DIR/metrics.jsonl (epoch, step, split, loss,
// acc, samples_per_s, wall_s, plus extras such as lr). Flushed after every line so that a killed
// run keeps what it logged.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace sw {

// An evaluation over a data set (all ranks together).
struct EvalResult {
  double loss = 0, acc = 0;
  int64_t samples = 0;
  double top5 = 0;  // label among the 5 largest logits (every sample when there are <= 5 classes)
};

// A per-rank value of the train record: NAME_rankR for each rank (when 1 < ranks <= 16, or
// always with `always`), and NAME_max over ranks with `max`.
struct RankValue {
  std::string name;
  double value = 0;
  bool always = false;
  bool max = false;
};

struct MetricsRecord {
  int epoch = 0;
  int64_t step = 0;
  std::string split;  // "train" | "test"
  double loss = 0, acc = 0, samplesPerSec = 0, wallSec = 0;
  std::vector<std::pair<std::string, double>> extra;
  std::string json() const;
};

class MetricsLog {
 public:
  MetricsLog() = default;
  // Opens for append; truncates to `keepBytes` first when >= 0 (resume drops lines logged after
  // the checkpoint, so a resumed run's log equals an uninterrupted one).
  MetricsLog(const std::string& path, int64_t keepBytes);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const MetricsRecord& r);
  int64_t bytes() const;

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace sw
