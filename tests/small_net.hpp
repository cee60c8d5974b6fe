// A small network whose parameters have several sizes (and a bias in every layer), for the tests of
// the gradient reducer.
#pragma once

#include <torch/torch.h>

struct SmallNet : torch::nn::Module {
  SmallNet() {
    a = register_module("a", torch::nn::Linear(16, 64));
    b = register_module("b", torch::nn::Linear(64, 64));
    c = register_module("c", torch::nn::Linear(64, 3));
  }
  torch::Tensor forward(const torch::Tensor& x) { return c(torch::tanh(b(torch::tanh(a(x))))); }
  torch::nn::Linear a{nullptr}, b{nullptr}, c{nullptr};
};
