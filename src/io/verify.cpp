#include "io/verify.hpp"

#include <H5Cpp.h>
#include <fmt/format.h>

#include <filesystem>

#include "io/h5.hpp"

namespace ddpm::io {
namespace {

// Owns an HDF5 identifier of any kind.
struct Id {
  hid_t id;
  explicit Id(hid_t i) : id(i) {}
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() {
    if (id >= 0) H5Idec_ref(id);
  }
  bool ok() const { return id >= 0; }
};

// Variable-length data lives outside the object (in a global heap) and needs reclaiming after a
// read; this program never writes it, so it is counted but not read.
bool variable_length(hid_t type) { return H5Tis_variable_str(type) > 0 || H5Tdetect_class(type, H5T_VLEN) > 0; }

// Reads `n` elements of `type` with `read`; "" when it worked, else HDF5's reason.
template <class Read>
std::string read_back(hid_t type, hid_t space, Read read) {
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  const std::size_t size = H5Tget_size(type);
  if (n < 0 || size == 0) return "cannot tell its size: " + hdf5_cause();
  if (variable_length(type)) return "";
  std::vector<char> buffer(static_cast<std::size_t>(n) * size + 1);
  if (read(buffer.data()) < 0) return hdf5_cause();
  return "";
}

// Whether the dataset's data has a checksum of its own: Fletcher32 on its chunks, or compact
// storage inside its (checksummed) object header.
bool has_own_checksum(hid_t dataset) {
  Id plist(H5Dget_create_plist(dataset));
  if (!plist.ok()) return false;
  const auto layout = H5Pget_layout(plist.id);
  if (layout == H5D_COMPACT) return true;
  if (layout != H5D_CHUNKED) return false;
  for (int i = 0; i < H5Pget_nfilters(plist.id); ++i) {
    unsigned flags = 0, config = 0;
    std::size_t nvalues = 0;
    if (H5Pget_filter2(plist.id, static_cast<unsigned>(i), &flags, &nvalues, nullptr, 0, nullptr, &config) ==
        H5Z_FILTER_FLETCHER32)
      return true;
  }
  return false;
}

struct Walk {
  Verification& v;

  void fail(const std::string& where, const std::string& what) { v.problems.push_back(where + ": " + what); }

  static herr_t attribute(hid_t object, const char* name, const H5A_info_t*, void* self_ptr) {
    auto& self = *static_cast<std::pair<Walk*, const std::string*>*>(self_ptr);
    const std::string where = *self.second + " (attribute " + name + ")";
    Id attr(H5Aopen(object, name, H5P_DEFAULT));
    if (!attr.ok()) {
      self.first->fail(where, hdf5_cause());
      return 0;
    }
    Id type(H5Aget_type(attr.id)), space(H5Aget_space(attr.id));
    if (!type.ok() || !space.ok()) {
      self.first->fail(where, hdf5_cause());
      return 0;
    }
    const auto why = read_back(type.id, space.id, [&](void* buf) { return H5Aread(attr.id, type.id, buf); });
    if (!why.empty()) self.first->fail(where, why);
    ++self.first->v.attributes;
    return 0;
  }

  void attributes(hid_t object, const std::string& where) {
    std::pair<Walk*, const std::string*> self{this, &where};
    hsize_t index = 0;
    if (H5Aiterate2(object, H5_INDEX_NAME, H5_ITER_NATIVE, &index, &Walk::attribute, &self) < 0)
      fail(where, "cannot list its attributes: " + hdf5_cause());
  }

  void dataset(hid_t ds, const std::string& where) {
    ++v.datasets;
    if (!has_own_checksum(ds)) ++v.unprotected;
    Id type(H5Dget_type(ds)), space(H5Dget_space(ds));
    if (!type.ok() || !space.ok()) return fail(where, hdf5_cause());
    const auto why =
        read_back(type.id, space.id, [&](void* buf) { return H5Dread(ds, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf); });
    if (!why.empty()) fail(where, why);
  }

  // Depth-limited: a damaged link that points back up must not recurse forever.
  void group(hid_t g, const std::string& where, int depth) {
    attributes(g, where);
    if (depth > 32) return fail(where, "groups nested more than 32 deep: a damaged link loops");
    H5G_info_t info;
    if (H5Gget_info(g, &info) < 0) return fail(where, "cannot list its members: " + hdf5_cause());
    for (hsize_t i = 0; i < info.nlinks; ++i) {
      char name[1024] = "";
      if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_NATIVE, i, name, sizeof name, H5P_DEFAULT) < 0) {
        fail(where, "cannot read the name of member " + std::to_string(i) + ": " + hdf5_cause());
        continue;
      }
      const std::string path = (where == "/" ? "/" : where + "/") + name;
      Id object(H5Oopen(g, name, H5P_DEFAULT));
      if (!object.ok()) {
        fail(path, hdf5_cause());
        continue;
      }
      switch (H5Iget_type(object.id)) {
        case H5I_GROUP: group(object.id, path, depth + 1); break;
        case H5I_DATASET:
          attributes(object.id, path);
          dataset(object.id, path);
          break;
        default: attributes(object.id, path);
      }
    }
  }
};

}  // namespace

Verification verify_file(const std::string& path) {
  Verification v;
  // open_read's errors (missing, not HDF5, unreadable superblock) are this file's one problem.
  try {
    auto file = open_read(path);
    v.checksummed = has_checksums(file);
    Id root(H5Gopen2(file.getId(), "/", H5P_DEFAULT));
    if (!root.ok()) {
      v.problems.push_back("/: " + hdf5_cause());
      return v;
    }
    Walk{v}.group(root.id, "/", 0);
  } catch (const Error& e) {
    v.problems.push_back(e.what());
  }
  return v;
}

std::string verification_report(const std::string& path, const Verification& v) {
  const auto counts = fmt::format("{} datasets and {} attributes", v.datasets, v.attributes);
  if (!v.ok()) {
    std::string out = fmt::format("{}: DAMAGED: {} problem(s) in {} read back:\n", path, v.problems.size(), counts);
    for (const auto& p : v.problems) out += "  " + p + "\n";
    return out;
  }
  if (!v.checksummed)
    return fmt::format("{}: {} read back without error, but the file carries no checksums (written before ddpm_dist "
                       "checksummed its files): damage to it would go unseen\n",
                       path, counts);
  std::string out = fmt::format("{}: verified: {} read back, every checksum matches\n", path, counts);
  if (v.unprotected > 0)
    out += fmt::format("  {} dataset(s) without a checksum of their own (added by another program?): damage to their "
                       "data would go unseen\n",
                       v.unprotected);
  return out;
}

}  // namespace ddpm::io
