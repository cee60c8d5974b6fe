// Guidance on the denoiser interface: D guided with weight w is (1 + w) D - w D_guide, where the
// guide is the model's own unconditional output (classifier-free guidance, Ho & Salimans 2022) or a
// weaker model (autoguidance, Karras et al. 2024). On D, so the same for every prediction (eps, v,
// x0, EDM's F): each one's x0 is affine in its output at fixed x, with weights that sum to one.
#pragma once

#include "model/diffusion.hpp"

namespace ddpm::model {

// Classifier-free: (1 + w) D(x, sigma, labels) - w D(x, sigma, no class), the two halves
// evaluated in one batch of twice the size. w = 0 returns D itself (the conditional model, at half
// the cost); so do calls without labels (nothing to guide).
Denoiser guided(Denoiser denoise, double w, int num_classes);

// Autoguidance: (1 + w) D(x, sigma, labels) - w D_guide(x, sigma, labels), the guide given the same
// labels (a conditional model's guide is its weak model's conditional output). w = 0 returns D.
Denoiser autoguided(Denoiser denoise, Denoiser guide, double w);

}  // namespace ddpm::model
