// A module's tensors by name, to and from an HDF5 group (checkpoints, the classifier file).
#pragma once

#include <H5Cpp.h>
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ddpm::io {

using Named = std::vector<std::pair<std::string, torch::Tensor>>;

// Parameters then buffers, by the module's dotted names.
Named named_tensors(torch::nn::Module& m);
void write_named(H5::Group& parent, const std::string& name, const Named& tensors, const std::string& description);
// Checks that `group` holds exactly these names with these shapes; throws ddpm::Error naming every
// difference ("of another architecture"). Nothing is copied, so a refused file changes nothing.
void check_named(const std::string& path, const H5::Group& group, const std::string& group_name, const Named& tensors);
// Reads the group's datasets for these names (after check_named), each verified against its
// checksum; throws DamagedFile naming the first that fails. Nothing is copied into `tensors`.
std::vector<torch::Tensor> read_named(const H5::Group& group, const Named& tensors);
// Copies values read by read_named into the tensors: the last step of a load, once all verified.
void assign_named(const Named& tensors, const std::vector<torch::Tensor>& values);

}  // namespace ddpm::io
