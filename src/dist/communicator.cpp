#include "dist/communicator.hpp"

namespace ddpm::dist {
namespace {
class DoneWork final : public Work {
 public:
  void wait() override {}
};
}  // namespace

std::unique_ptr<Work> SelfCommunicator::allreduce_sum_async(torch::Tensor&) { return std::make_unique<DoneWork>(); }

}  // namespace ddpm::dist
