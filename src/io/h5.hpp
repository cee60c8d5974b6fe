// Thin helpers over the HDF5 C++ API: tensors as datasets, scalars and text as attributes, and
// an atomic whole-file write (built in memory, written to a temporary name in the same folder,
// fsync, rename, fsync folder).
//
// Every file written here is checksummed so that damage cannot load silently: new files use the
// HDF5 1.10 format, whose superblock, object headers (with their attributes) and chunk indexes
// carry checksums, and every dataset is either compact (inside its checksummed object header) or
// chunked with the Fletcher32 filter. HDF5 verifies both on every read.
#pragma once

#include <H5Cpp.h>
#include <torch/types.h>

#include <functional>
#include <string>

#include "util/error.hpp"

namespace ddpm::io {

// A file that does not read back as written: a checksum that does not match, a garbled or truncated
// structure, a checkpoint never completed. `--resume auto` moves past such a file to an older one;
// every other error stops.
class DamagedFile : public Error {
 public:
  using Error::Error;
};

// The innermost message on HDF5's error stack (e.g. "data error detected by Fletcher32 checksum"):
// what failed, where an H5::Exception only names the call. Valid right after the failing call;
// the next HDF5 call clears it.
std::string hdf5_cause();

// Whether `file` carries checksums (HDF5 superblock version 2 or later, as this program writes since
// checksums were added); files written before load as ever, but damage to them goes unseen.
bool has_checksums(const H5::H5File& file);
// The one warning for such a file.
std::string no_checksums_warning(const std::string& path);

// Runs `read` (which reads from the file at `path`); damage it meets, a DamagedFile or an HDF5
// error, becomes one DamagedFile "PATH: does not verify: WHAT" followed by `what_to_do`. Other
// errors (another architecture, another data set) pass unchanged.
template <class Read>
auto read_verified(const std::string& path, const std::string& what_to_do, Read&& read) -> decltype(read()) {
  try {
    return read();
  } catch (const DamagedFile& e) {
    throw DamagedFile(path + ": does not verify: " + e.what() + what_to_do);
  } catch (const H5::Exception& e) {
    throw DamagedFile(path + ": does not verify: " + e.getFuncName() + ": " + e.getDetailMsg() + what_to_do);
  }
}

// Turns HDF5's own error printing off (its stack dumps to stderr): its errors become exceptions
// with this project's messages. Idempotent; every opening of a file calls it.
void quiet_hdf5();

// Writes a contiguous CPU tensor (float32, float64, int64, int32 or uint8) as a dataset.
void write_tensor(H5::Group& group, const std::string& name, const torch::Tensor& t);
// Throws DamagedFile naming the dataset when it fails its checksum or cannot be read.
torch::Tensor read_tensor(const H5::Group& group, const std::string& name);
std::vector<std::int64_t> dataset_shape(const H5::Group& group, const std::string& name);

// The group `name` of `file`, created with the groups on its way (`name` may be a path) where missing.
H5::Group open_or_create(H5::H5File& file, const std::string& name);
// A float64 scalar, or a tensor, written as `name` of `g` (replacing one there) with a "description".
void write_scalar(H5::Group& g, const std::string& name, double value, const std::string& description);
void write_array(H5::Group& g, const std::string& name, const torch::Tensor& t, const std::string& description);

void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value);
void write_attr(H5::H5Object& obj, const std::string& name, std::int64_t value);
void write_attr(H5::H5Object& obj, const std::string& name, double value);
std::string read_attr_string(const H5::H5Object& obj, const std::string& name);
std::int64_t read_attr_int(const H5::H5Object& obj, const std::string& name);
double read_attr_double(const H5::H5Object& obj, const std::string& name);
bool has_attr(const H5::H5Object& obj, const std::string& name);

// Creates `dir` and its parents where missing; throws ddpm::Error naming it where that fails.
void create_output_folder(const std::string& dir);

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

// Opens an existing file read-only; a missing file gives a ddpm::Error naming it, one that does not
// open as HDF5 a DamagedFile.
H5::H5File open_read(const std::string& path);

}  // namespace ddpm::io
