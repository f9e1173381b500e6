// What a run shows in TensorBoard, under --log_dir: the TF sample's summaries in event files
// (log_dir/train, log_dir/test, and log_dir/validation), and Chrome traces of the steps the sample
// traced (log_dir/traces). The training loop hands over what the backend measured; a background
// thread encodes and writes it, so the loop waits for a disk only behind a full queue.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "train/backend.h"
#include "train/config.h"

namespace mnist {

class RunSummaries {
 public:
  // Nothing at all when run.log_dir is empty. Otherwise creates the three event files (a resumed
  // run adds new files beside the earlier ones) and writes the run's flags as text at
  // first_iteration, and enables the backend's per-step scalars. Throws Error(kOutputFailed) when
  // a folder or file cannot be made.
  RunSummaries(const RunConfig& run, const MnistData& data, Backend& backend,
               std::int64_t first_iteration);
  // Takes what the backend still holds and writes whatever is queued, then stops the writer
  // (never throws). After a stop request it waits for the disk at most a couple of seconds and
  // drops what is left.
  ~RunSummaries();
  RunSummaries(const RunSummaries&) = delete;
  RunSummaries& operator=(const RunSummaries&) = delete;

  bool enabled() const { return enabled_; }

  // Before the loop's training step at `iteration`: records which iteration the backend's next
  // step belongs to and, every --summary_every steps, asks the backend for its statistics.
  void before_step(std::int64_t iteration);
  // Whether the evaluation at `iteration` also evaluates the validation split: every
  // --summary_every evaluations (every 100 iterations by default), and always the first.
  bool validation_due(std::int64_t iteration) const;
  // At an evaluation (the loop has synchronised anyway): takes what the backend measured since the
  // last one and queues it with the test results, the validation results if validation_due, and
  // the training images per second since the last evaluation (0: no steps). Each with accuracy and
  // cross-entropy.
  void evaluated(std::int64_t iteration, const Evaluation& test,
                 const std::optional<Evaluation>& validation, double images_per_second);
  // Takes what is left, waits until everything is written; throws the first write error
  // (Error(kOutputFailed)). The loop calls it at the end of a run (and the destructor copes
  // without it).
  void finish();

 private:
  struct Writers;
  using Job = std::function<void(Writers&)>;

  void take_from_backend();
  void queue(Job job);
  void work();
  void rethrow_failure();
  void stop_writer();

  bool enabled_ = false;
  const RunConfig& run_;
  const MnistData& data_;
  Backend& backend_;
  std::string traces_dir_;
  std::vector<std::string> tensor_names_;

  // Which loop iteration each backend step since steps_from_ belongs to.
  std::int64_t steps_from_ = 0, process_first_step_ = 0;
  std::vector<std::int64_t> iterations_;
  std::vector<double> wall_times_;  // when each of those steps was started (seconds since 1970)
  bool first_evaluation_ = true;
  std::int64_t cached_epoch_ = -1;  // the epoch order the images were last looked up in
  std::vector<std::int32_t> cached_order_;

  // The writer thread and its queue.
  std::unique_ptr<Writers> writers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> jobs_;
  bool closing_ = false;
  std::string failure_;  // the first error the writer met
  std::atomic<bool> failed_{false};
  bool finished_ = false;
  std::thread worker_;
};

}  // namespace mnist
