// Files written whole or not at all: built in memory by HDF5's core driver, then written under a
// temporary name, fsync'ed and renamed (write_atomically, update_atomically in io/h5.hpp).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "io/h5.hpp"
#include "util/error.hpp"

namespace ddpm::io {
namespace fs = std::filesystem;

void create_output_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the output folder: " + ec.message());
}

namespace {

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) throw Error(path + ": cannot open for fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error(path + ": fsync failed: " + std::strerror(err));
}


// The core driver's buffers, through HDF5's file image callbacks, so that the image is taken from
// the closed file. H5Fget_file_image on the open file is wrong before HDF5 2.0 for files with
// checksums (HDF5 issue 1915): it clears the superblock's status flags without recomputing its
// checksum, and the file then does not open.
struct ClosedImage {
  std::map<void*, std::size_t> sizes;  // every buffer the driver holds, with its size
  std::vector<char> bytes;             // the buffer the driver freed when it closed the file

  static void* malloc(std::size_t size, H5FD_file_image_op_t, void* self) {
    void* p = std::malloc(size);
    if (p) static_cast<ClosedImage*>(self)->sizes[p] = size;
    return p;
  }
  static void* memcpy(void* dst, const void* src, std::size_t size, H5FD_file_image_op_t, void*) {
    return std::memcpy(dst, src, size);
  }
  static void* realloc(void* p, std::size_t size, H5FD_file_image_op_t, void* self) {
    auto& sizes = static_cast<ClosedImage*>(self)->sizes;
    void* q = std::realloc(p, size);
    if (q) {
      sizes.erase(p);
      sizes[q] = size;
    }
    return q;
  }
  static herr_t free(void* p, H5FD_file_image_op_t op, void* self_ptr) {
    auto& self = *static_cast<ClosedImage*>(self_ptr);
    if (op == H5FD_FILE_IMAGE_OP_FILE_CLOSE && p) self.bytes.assign(static_cast<char*>(p), static_cast<char*>(p) + self.sizes[p]);
    self.sizes.erase(p);
    std::free(p);
    return 0;
  }
  static void* same_udata(void* self) { return self; }
  static herr_t keep_udata(void*) { return 0; }
};

// The file is built in memory by HDF5's core driver (no backing store) and written to disk here
// with plain POSIX calls: a failed write (a full disk) is then an ordinary error of write(2) that
// leaves HDF5 with nothing open. Written through the library, a failed flush leaves the file open
// inside it, its close fails, and HDF5 1.10 crashes at exit closing it again.
std::vector<char> build_in_memory(const std::string& label, const std::vector<char>* start_from,
                                  const std::function<void(H5::H5File&)>& fill) {
  ClosedImage image;
  H5::FileAccPropList fapl;
  fapl.setCore(1 << 20, false);
  // The 1.10 format: checksums on all metadata (see h5.hpp), and still readable by HDF5 1.10.
  if (!start_from) fapl.setLibverBounds(H5F_LIBVER_V110, H5F_LIBVER_V110);
  H5FD_file_image_callbacks_t callbacks{&ClosedImage::malloc, &ClosedImage::memcpy,     &ClosedImage::realloc,
                                        &ClosedImage::free,   &ClosedImage::same_udata, &ClosedImage::keep_udata,
                                        &image};
  if (H5Pset_file_image_callbacks(fapl.getId(), &callbacks) < 0 ||
      (start_from && H5Pset_file_image(fapl.getId(), const_cast<char*>(start_from->data()), start_from->size()) < 0))
    throw Error(label + ": HDF5 could not take the file's image");
  // The core driver refuses an image whose name exists on disk: a name that never will.
  const std::string name = label + ".in-memory." + std::to_string(::getpid());
  H5::H5File file(name, start_from ? H5F_ACC_RDWR : H5F_ACC_TRUNC, H5::FileCreatPropList::DEFAULT, fapl);
  fill(file);
  file.flush(H5F_SCOPE_GLOBAL);
  // The file's size (its end of allocated space); the driver's buffer is rounded up to its increment.
  const ssize_t size = H5Fget_file_image(file.getId(), nullptr, 0);
  file.close();
  if (size < 0 || image.bytes.size() < static_cast<std::size_t>(size))
    throw Error(label + ": HDF5 could not produce the file's image");
  image.bytes.resize(static_cast<std::size_t>(size));
  return std::move(image.bytes);
}

// Writes `bytes` to a temporary name beside `path`, fsyncs it, renames it over `path` and fsyncs
// the folder; on any failure removes the temporary file and keeps `path` as it was.
void commit_atomically(const std::string& path, const std::vector<char>& bytes) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  auto fail = [&](const std::string& what, int err) {
    fs::remove(tmp, ec);
    throw Error(path + ": " + what + ": " + std::strerror(err) + "; check free space and permissions of " +
                dir.string() + "; the previous file is kept");
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create " + tmp, errno);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : EIO;
      ::close(fd);
      fail("writing " + tmp + " failed", err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail("fsync of " + tmp + " failed", err);
  }
  if (::close(fd) != 0) fail("closing " + tmp + " failed", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp + " over it", errno);
  fsync_path(dir.string(), O_RDONLY | O_DIRECTORY);
}

// Runs `make` (which builds the file's bytes) with HDF5's and the file system's errors turned into
// one ddpm::Error naming `path`; the folder is created first.
void write_file(const std::string& path, const std::function<std::vector<char>()>& make) {
  quiet_hdf5();
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  create_output_folder(dir.string());
  std::vector<char> bytes;
  try {
    bytes = make();
  } catch (const H5::Exception& e) {
    throw Error(path + ": HDF5 could not build the file (" + e.getFuncName() + ": " + e.getDetailMsg() +
                "); the previous file is kept");
  } catch (const fs::filesystem_error& e) {
    throw Error(path + ": " + e.what() + "; the previous file is kept");
  }
  commit_atomically(path, bytes);
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill) {
  write_file(path, [&] { return build_in_memory(path, nullptr, fill); });
}

void update_atomically(const std::string& path, const std::function<void(H5::H5File&)>& fill) {
  if (!fs::exists(path)) return write_atomically(path, fill);
  write_file(path, [&] {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    std::vector<char> current(in ? static_cast<std::size_t>(in.tellg()) : 0);
    in.seekg(0);
    if (!in || !in.read(current.data(), static_cast<std::streamsize>(current.size())))
      throw Error(path + ": cannot read the current file to update it");
    return build_in_memory(path, &current, fill);
  });
}

}  // namespace ddpm::io
