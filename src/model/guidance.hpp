// Classifier-free guidance (Ho & Salimans 2022) for a class-conditional network.
#pragma once

#include "model/diffusion.hpp"

namespace ddpm::model {

// `net` guided with weight w: (1 + w) net(x, t, labels) - w net(x, t, no class), the two halves
// evaluated in one batch of twice the size. Combined on the network's output: the noise estimate
// of every prediction (eps, v, x0, EDM's F) is affine in it at fixed x_t, with weights that sum
// to one, so this is the same as guiding the noise estimate. w = 0 returns `net` itself (the
// conditional model, at half the cost); so do calls without labels (nothing to guide).
Network guided(Network net, double w, int num_classes);

}  // namespace ddpm::model
