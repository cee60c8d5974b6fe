#include "io/named_tensors.hpp"

#include "io/h5.hpp"
#include "util/error.hpp"

namespace ddpm::io {

Named named_tensors(torch::nn::Module& m) {
  Named out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value());
  return out;
}

void write_named(H5::Group& parent, const std::string& name, const Named& tensors, const std::string& description) {
  auto group = parent.createGroup(name);
  write_attr(group, "description", description);
  for (const auto& [key, t] : tensors) write_tensor(group, key, t);
}

void check_named(const std::string& path, const H5::Group& group, const std::string& group_name, const Named& tensors) {
  std::string problems;
  for (const auto& [name, t] : tensors) {
    if (!group.nameExists(name)) {
      problems += "\n  missing " + group_name + "/" + name + " " + c10::str(t.sizes());
      continue;
    }
    const auto shape = dataset_shape(group, name);
    if (shape != t.sizes().vec())
      problems += "\n  " + group_name + "/" + name + ": file has " + c10::str(c10::IntArrayRef(shape)) +
                  ", model has " + c10::str(t.sizes());
  }
  if (group.getNumObjs() != tensors.size())
    problems += "\n  " + group_name + " holds " + std::to_string(group.getNumObjs()) + " tensors, the model has " +
                std::to_string(tensors.size());
  if (!problems.empty())
    throw Error(path + ": a file of another architecture; compare its 'config' attribute with your config:" + problems);
}

std::vector<torch::Tensor> read_named(const H5::Group& group, const Named& tensors) {
  std::vector<torch::Tensor> values;
  for (const auto& entry : tensors) values.push_back(read_tensor(group, entry.first));
  return values;
}

void assign_named(const Named& tensors, const std::vector<torch::Tensor>& values) {
  torch::NoGradGuard no_grad;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    auto dst = tensors[i].second;
    dst.copy_(values[i]);
  }
}

}  // namespace ddpm::io
