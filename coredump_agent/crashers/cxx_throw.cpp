// An exception nobody catches: std::terminate, SIGABRT.
#include <stdexcept>
#include <string>
namespace milvus {
__attribute__((noinline)) void load_field(int id) {
    if (id == 3) throw std::runtime_error("field " + std::to_string(id) + " is corrupt");
}
}  // namespace milvus
int main() { for (int i = 0; i < 5; i++) milvus::load_field(i); return 0; }
