// Guidance on the denoiser interface: classifier-free guidance (Ho & Salimans 2022) of a
// class-conditional model by its own unconditional output.
#pragma once

#include "model/diffusion.hpp"

namespace ddpm::model {

// D guided with weight w: (1 + w) D(x, sigma, labels) - w D(x, sigma, no class), the two halves
// evaluated in one batch of twice the size. On D, so the same for every prediction (eps, v, x0,
// EDM's F): each one's x0 is affine in its output at fixed x, with weights that sum to one.
// w = 0 returns D itself (the conditional model, at half the cost); so do calls without labels
// (nothing to guide).
Denoiser guided(Denoiser denoise, double w, int num_classes);

}  // namespace ddpm::model
