// What a train::Trainer trains: a network and its EMA twin, the inputs of a step's rows, and the
// mean loss of those rows. The trainer owns the rest (optimizer and learning rate, gradient
// all-reduce, batch split, EMA updates, skipped steps, checkpoints, history, stops), so that every
// model of the project trains, resumes and stops the same way.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ddpm::train {

class Task {
 public:
  virtual ~Task() = default;
  // Built from the seed alone, on the trainer's device (the trainer broadcasts rank 0's weights).
  virtual torch::nn::Module& model() = 0;
  virtual torch::nn::Module& ema_model() = 0;
  // The training examples that data::BatchPlan shuffles into batches.
  virtual std::int64_t examples() const = 0;
  // Rows [begin, end) of global step `step`: `rows` holds their examples' indices (on the device).
  // Every draw is made for the whole global batch from (seed, step) and then cut to the rows, so
  // that no input depends on the number of ranks or the split. Undefined entries are allowed
  // (inputs a model does not take). With CUDA graphs each step's inputs are copied into fixed
  // tensors of the same shapes.
  virtual std::vector<torch::Tensor> inputs(std::int64_t step, const torch::Tensor& rows, std::int64_t begin,
                                            std::int64_t end) = 0;
  // The mean loss over the rows of `inputs`, as a scalar tensor; called under the trainer's autocast.
  virtual torch::Tensor loss(const std::vector<torch::Tensor>& inputs) = 0;
  // Whether a change of this configuration key (e.g. "model.base_channels") between a checkpoint
  // and now changes what the weights mean; a resume is then refused.
  virtual bool defines_weights(const std::string& key) const = 0;
  // The network's name in the log ("U-Net").
  virtual std::string name() const = 0;
};

}  // namespace ddpm::train
