#include "io/h5.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <vector>

#include "util/error.hpp"

namespace ddpm::io {
namespace fs = std::filesystem;
namespace {

const H5::PredType& h5_type(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32: return H5::PredType::NATIVE_FLOAT;
    case torch::kFloat64: return H5::PredType::NATIVE_DOUBLE;
    case torch::kInt64: return H5::PredType::NATIVE_INT64;
    case torch::kInt32: return H5::PredType::NATIVE_INT32;
    case torch::kUInt8: return H5::PredType::NATIVE_UINT8;
    default: throw std::invalid_argument(std::string("write_tensor: unsupported dtype ") + c10::toString(t));
  }
}

torch::ScalarType torch_type(const H5::DataType& t) {
  if (t == H5::PredType::NATIVE_FLOAT) return torch::kFloat32;
  if (t == H5::PredType::NATIVE_DOUBLE) return torch::kFloat64;
  if (t == H5::PredType::NATIVE_INT64) return torch::kInt64;
  if (t == H5::PredType::NATIVE_INT32) return torch::kInt32;
  if (t == H5::PredType::NATIVE_UINT8) return torch::kUInt8;
  throw Error("unsupported HDF5 element type in dataset");
}

herr_t keep_innermost(unsigned n, const H5E_error2_t* e, void* out) {
  if (n != 0) return 0;
  char minor[256] = "";
  H5Eget_msg(e->min_num, nullptr, minor, sizeof minor);
  *static_cast<std::string*>(out) = std::string(e->desc && *e->desc ? e->desc : "") + " (" + minor + ")";
  return 0;
}

// Chunks of up to ~1 MiB along the first dimension: whole small tensors, rows of large ones, split
// into chunks of equal rows (HDF5 stores a partial last chunk at full size).
std::vector<hsize_t> chunk_of(const std::vector<hsize_t>& dims, std::size_t element_bytes) {
  std::vector<hsize_t> chunk = dims;
  hsize_t row_bytes = element_bytes;
  for (std::size_t i = 1; i < dims.size(); ++i) row_bytes *= dims[i];
  const hsize_t most_rows = std::clamp<hsize_t>((hsize_t{1} << 20) / std::max<hsize_t>(row_bytes, 1), 1, dims[0]);
  const hsize_t chunks = (dims[0] + most_rows - 1) / most_rows;
  chunk[0] = (dims[0] + chunks - 1) / chunks;
  return chunk;
}

}  // namespace

void quiet_hdf5() {
  static const bool once = [] {
    H5::Exception::dontPrint();
    return true;
  }();
  (void)once;
}

std::string hdf5_cause() {
  std::string cause = "no detail from HDF5";
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &cause);
  return cause;
}

bool has_checksums(const H5::H5File& file) {
  H5F_info2_t info;
  return H5Fget_info2(file.getId(), &info) >= 0 && info.super.version >= 2;
}

std::string no_checksums_warning(const std::string& path) {
  return path + ": written before ddpm_dist checksummed its files: damage to it cannot be detected";
}

void write_tensor(H5::Group& group, const std::string& name, const torch::Tensor& t) {
  auto c = t.detach().cpu().contiguous();
  std::vector<hsize_t> dims(c.sizes().begin(), c.sizes().end());
  H5::DataSpace space(static_cast<int>(dims.size()), dims.empty() ? nullptr : dims.data());
  // Data with elements gets Fletcher32; a scalar or an empty tensor cannot be chunked and is stored
  // compact, inside its object header and so under the header's checksum.
  H5::DSetCreatPropList props;
  if (c.dim() > 0 && c.numel() > 0) {
    const auto chunk = chunk_of(dims, c.element_size());
    props.setChunk(static_cast<int>(chunk.size()), chunk.data());
    props.setFletcher32();
  } else {
    props.setLayout(H5D_COMPACT);
  }
  auto ds = group.createDataSet(name, h5_type(c.scalar_type()), space, props);
  if (c.numel() > 0) ds.write(c.data_ptr(), h5_type(c.scalar_type()));
}

namespace {
std::vector<std::int64_t> shape_of(const H5::DataSet& ds) {
  auto space = ds.getSpace();
  std::vector<hsize_t> dims(space.getSimpleExtentNdims());
  space.getSimpleExtentDims(dims.data());
  return {dims.begin(), dims.end()};
}
}  // namespace

std::vector<std::int64_t> dataset_shape(const H5::Group& group, const std::string& name) {
  return shape_of(group.openDataSet(name));
}

torch::Tensor read_tensor(const H5::Group& group, const std::string& name) {
  const auto where = group.getObjName() + (group.getObjName() == "/" ? "" : "/") + name;
  H5::DataSet ds;
  try {
    ds = group.openDataSet(name);
  } catch (const H5::Exception&) {
    throw DamagedFile(where + ": cannot open the dataset: " + hdf5_cause());
  }
  const auto type = torch_type(ds.getDataType());
  auto out = torch::empty(shape_of(ds), type);
  if (out.numel() > 0 && H5Dread(ds.getId(), h5_type(type).getId(), H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data_ptr()) < 0)
    throw DamagedFile(where + ": " + hdf5_cause());
  return out;
}

void write_attr(H5::H5Object& obj, const std::string& name, const std::string& value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  H5::StrType type(H5::PredType::C_S1, std::max<std::size_t>(value.size(), 1));
  obj.createAttribute(name, type, H5::DataSpace(H5S_SCALAR)).write(type, value.c_str());
}

void write_attr(H5::H5Object& obj, const std::string& name, std::int64_t value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  obj.createAttribute(name, H5::PredType::NATIVE_INT64, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_INT64, &value);
}

void write_attr(H5::H5Object& obj, const std::string& name, double value) {
  if (obj.attrExists(name)) obj.removeAttr(name);
  obj.createAttribute(name, H5::PredType::NATIVE_DOUBLE, H5::DataSpace(H5S_SCALAR))
      .write(H5::PredType::NATIVE_DOUBLE, &value);
}

std::string read_attr_string(const H5::H5Object& obj, const std::string& name) {
  auto attr = obj.openAttribute(name);
  std::string value;
  attr.read(attr.getStrType(), value);
  return value;
}

std::int64_t read_attr_int(const H5::H5Object& obj, const std::string& name) {
  std::int64_t v = 0;
  obj.openAttribute(name).read(H5::PredType::NATIVE_INT64, &v);
  return v;
}

double read_attr_double(const H5::H5Object& obj, const std::string& name) {
  double v = 0;
  obj.openAttribute(name).read(H5::PredType::NATIVE_DOUBLE, &v);
  return v;
}

bool has_attr(const H5::H5Object& obj, const std::string& name) { return obj.attrExists(name); }

void append_1d(H5::Group& group, const std::string& name, const std::vector<double>& values,
               const std::string& description) {
  if (!group.nameExists(name)) {
    const hsize_t zero = 0, unlimited = H5S_UNLIMITED, chunk = 256;
    H5::DataSpace space(1, &zero, &unlimited);
    H5::DSetCreatPropList props;
    props.setChunk(1, &chunk);
    props.setFletcher32();
    auto ds = group.createDataSet(name, H5::PredType::NATIVE_DOUBLE, space, props);
    write_attr(ds, "description", description);
  }
  auto ds = group.openDataSet(name);
  hsize_t old_size = 0;
  ds.getSpace().getSimpleExtentDims(&old_size);
  const hsize_t added = values.size(), new_size = old_size + added;
  if (added == 0) return;
  ds.extend(&new_size);
  auto file_space = ds.getSpace();
  file_space.selectHyperslab(H5S_SELECT_SET, &added, &old_size);
  H5::DataSpace mem(1, &added);
  ds.write(values.data(), H5::PredType::NATIVE_DOUBLE, mem, file_space);
}

std::vector<double> read_1d(const H5::Group& group, const std::string& name) {
  auto ds = group.openDataSet(name);
  hsize_t n = 0;
  ds.getSpace().getSimpleExtentDims(&n);
  std::vector<double> out(n);
  if (n > 0) ds.read(out.data(), H5::PredType::NATIVE_DOUBLE);
  return out;
}

void append_frame(H5::Group& group, const std::string& name, const torch::Tensor& frame_u8,
                  const std::string& description) {
  auto f = frame_u8.detach().cpu().contiguous();
  TORCH_CHECK(f.scalar_type() == torch::kUInt8 && f.dim() == 2, "append_frame: expects a uint8 [H, W] tensor");
  const hsize_t h = static_cast<hsize_t>(f.size(0)), w = static_cast<hsize_t>(f.size(1));
  if (!group.nameExists(name)) {
    const hsize_t zero[3] = {0, h, w}, max[3] = {H5S_UNLIMITED, h, w}, chunk[3] = {1, h, w};
    H5::DataSpace space(3, zero, max);
    H5::DSetCreatPropList props;
    props.setChunk(3, chunk);
    props.setFletcher32();
    auto ds = group.createDataSet(name, H5::PredType::NATIVE_UINT8, space, props);
    write_attr(ds, "description", description);
  }
  auto ds = group.openDataSet(name);
  hsize_t dims[3] = {0, 0, 0};
  ds.getSpace().getSimpleExtentDims(dims);
  if (dims[1] != h || dims[2] != w)
    throw Error(name + ": frames of " + std::to_string(dims[1]) + "x" + std::to_string(dims[2]) + " stored, " +
                std::to_string(h) + "x" + std::to_string(w) + " given");
  const hsize_t grown[3] = {dims[0] + 1, h, w}, count[3] = {1, h, w}, start[3] = {dims[0], 0, 0};
  ds.extend(grown);
  auto file_space = ds.getSpace();
  file_space.selectHyperslab(H5S_SELECT_SET, count, start);
  H5::DataSpace mem(3, count);
  ds.write(f.data_ptr(), H5::PredType::NATIVE_UINT8, mem, file_space);
}

void truncate_rows(H5::Group& group, const std::string& name, std::int64_t length) {
  auto ds = group.openDataSet(name);
  auto space = ds.getSpace();
  std::vector<hsize_t> dims(static_cast<std::size_t>(space.getSimpleExtentNdims()));
  space.getSimpleExtentDims(dims.data());
  dims[0] = static_cast<hsize_t>(length);
  ds.extend(dims.data());
}

H5::Group open_or_create(H5::H5File& file, const std::string& name) {
  for (auto slash = name.find('/'); slash != std::string::npos; slash = name.find('/', slash + 1))
    if (!file.nameExists(name.substr(0, slash))) file.createGroup(name.substr(0, slash));
  return file.nameExists(name) ? file.openGroup(name) : file.createGroup(name);
}

void write_scalar(H5::Group& g, const std::string& name, double value, const std::string& description) {
  if (g.nameExists(name)) g.unlink(name);
  write_tensor(g, name, torch::tensor({value}, torch::kFloat64).reshape({}));
  auto ds = g.openDataSet(name);
  write_attr(ds, "description", description);
}
void write_array(H5::Group& g, const std::string& name, const torch::Tensor& t, const std::string& description) {
  if (g.nameExists(name)) g.unlink(name);
  write_tensor(g, name, t);
  auto ds = g.openDataSet(name);
  write_attr(ds, "description", description);
}

H5::H5File open_read(const std::string& path) {
  quiet_hdf5();
  if (!fs::exists(path)) throw Error(path + ": no such file");
  try {
    if (!H5::H5File::isHdf5(path)) throw DamagedFile(path + ": not an HDF5 file (no HDF5 signature); the file is damaged or of another kind");
    return H5::H5File(path, H5F_ACC_RDONLY);
  } catch (const H5::Exception&) {
    throw DamagedFile(path + ": cannot open as HDF5 (" + hdf5_cause() + "); the file is truncated or corrupt");
  }
}

}  // namespace ddpm::io
