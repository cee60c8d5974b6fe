// Thin helpers over the HDF5 C++ API: tensors as datasets, scalars and text as attributes, and
// an atomic whole-file write (built in memory, written to a temporary name in the same folder,
// fsync, rename, fsync folder).
#pragma once

#include <H5Cpp.h>
#include <torch/types.h>

#include <functional>
#include <string>

namespace ddpm::io {

// Writes a contiguous CPU tensor (float32, float64, int64, int32 or uint8) as a dataset.
void write_tensor(H5::Group& group, const std::string& name, const torch::Tensor& t);
torch::Tensor read_tensor(const H5::Group& group, const std::string& name);
std::vector<std::int64_t> dataset_shape(const H5::Group& group, const std::string& name);

void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value);
void write_attr(H5::H5Object& obj, const std::string& name, std::int64_t value);
void write_attr(H5::H5Object& obj, const std::string& name, double value);
std::string read_attr_string(const H5::H5Object& obj, const std::string& name);
std::int64_t read_attr_int(const H5::H5Object& obj, const std::string& name);
double read_attr_double(const H5::H5Object& obj, const std::string& name);
bool has_attr(const H5::H5Object& obj, const std::string& name);

// Runs `fill` on a new file held in memory, then writes it to a temporary name beside `path` and
// makes it `path` atomically. On any failure (HDF5, a full disk) the temporary file is removed,
// the previous `path` is left untouched, and HDF5 keeps nothing open.
void write_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill);

// Like write_atomically, but `fill` starts from the contents of the current `path` when there is one.
// Readers that have the old file open keep reading it; a crash leaves the previous file.
void update_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill);

// 1-D extendible dataset helpers for metric histories.
void append_1d(H5::Group& group, const std::string& name, const std::vector<double>& values,
               const std::string& description);
std::vector<double> read_1d(const H5::Group& group, const std::string& name);
// Extendible datasets: keeps the first `length` rows (along dimension 0) of `name`.
void truncate_rows(H5::Group& group, const std::string& name, std::int64_t length);
// Appends a uint8 [H, W] frame to the extendible dataset `name` [rows, H, W], made on first use.
void append_frame(H5::Group& group, const std::string& name, const torch::Tensor& frame_u8,
                  const std::string& description);

// Opens an existing file read-only; a missing or non-HDF5 file gives a ddpm::Error naming it.
H5::H5File open_read(const std::string& path);

}  // namespace ddpm::io
