#pragma once
// The training checkpoint both trainers keep (the encoder trainer's <encoder>.ckpt and the slide CNN's
// fold<r>/checkpoint.pt; internal to core_nn, includes torch): one LibTorch archive with the networks,
// optimisers, byte blobs and random generators, beside the trainer's own state as a JSON string record
// "state/json" (always written last), published atomically. Each trainer keeps its own state layout;
// this module owns the archive, the identity check against the resuming run and the error wording.
#include "core/base/atomicfile.h"

#include <torch/serialize/archive.h>

#include <c10/util/Optional.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace nic {

/// Run-identity entries that hold one element per item of the run (per slide of a cohort): a difference
/// in them is named by the item ("label of slide 3 (s2) is …") instead of dumping two arrays.
struct IdentityItems {
    std::string noun;                                         ///< one item, for messages ("slide")
    std::vector<std::pair<std::string, std::string>> entries; ///< identity key → its element ("labels" → "label")
    std::function<std::string(std::size_t)> name;             ///< item i's name (the slide's id)
};

/// A training checkpoint being written (constructed with its path, filled with add*(), then save()) or
/// read (open(), then read*()). Every failure is an exception naming the file: IoError for files that cannot
/// be written or that LibTorch cannot load, FormatError for loadable files whose contents are not a usable
/// checkpoint, InvalidArgument for a checkpoint of a run with other parameters.
/// One object per thread.
class TrainingCheckpoint {
public:
    /// The hint every refused resume ends with.
    static constexpr const char* kResumeHint = " (resume with the same parameters, or start afresh without resuming)";

    /// A new checkpoint, to be written to `path` by save().
    explicit TrainingCheckpoint(std::filesystem::path path) : path_(std::move(path)) {}

    /// Opens `path` with its tensors on `device` (nullopt: where they were saved) and parses its state.
    /// `format` names the kind of file for the error when the state record is missing ("nic train checkpoint").
    /// IoError "<path>: cannot read checkpoint: <cause>" (missing, truncated, not an archive); FormatError
    /// "<path>: not a <format> (no state/json record)", "<path>: damaged checkpoint: <cause>" (state not JSON).
    static TrainingCheckpoint open(const std::filesystem::path& path, c10::optional<c10::Device> device,
                                   const std::string& format);

    /// Throws InvalidArgument "<file>: cannot resume with different parameters: <key> is <old> in the
    /// checkpoint, <new> now" + kResumeHint for the first key of `now` (in its order) whose value differs
    /// in `stored` (absent keys differ). `items` (optional) names differences in per-item arrays.
    static void checkIdentity(const std::filesystem::path& file, const nlohmann::ordered_json& stored,
                              const nlohmann::ordered_json& now, const IdentityItems* items = nullptr);

    // --- writing: IoError "<path>: cannot write checkpoint: <cause>" on failure ------------------------------

    void addModule(const std::string& key, const torch::nn::Module& module);
    void addOptimizer(const std::string& key, const torch::optim::Optimizer& optimizer);
    /// Bytes (a serialised model, say) as a uint8 tensor.
    void addBytes(const std::string& key, const std::string& bytes);
    /// The state of torch's default generators ("rng/cpu"; "rng/cuda" too when `device` is a GPU), which
    /// dropout and other random layers draw from, so a resumed run draws what the uninterrupted one would.
    void addGenerators(c10::Device device);
    /// Writes the records and `state` (as "state/json") to path() atomically: the old file or the new one,
    /// never half. The same as stage(state), then publish().
    void save(const std::string& state);
    /// save()'s first half: writes and syncs the new file under a temporary name; path() is unchanged until
    /// publish(), and if this object is destroyed first the temporary file is removed.
    void stage(const std::string& state);
    /// save()'s second half: renames what stage() wrote over path().
    void publish();

    // --- reading (after open()) ----------------------------------------------------------------------------

    const std::filesystem::path& path() const { return path_; }
    /// The state record, keys in file order.
    const nlohmann::ordered_json& state() const { return state_; }
    /// IoError "<path>: cannot read checkpoint: <cause>" for a missing or unloadable record.
    void readModule(const std::string& key, torch::nn::Module& module);
    void readOptimizer(const std::string& key, torch::optim::Optimizer& optimizer);
    /// FormatError "<path>: damaged checkpoint: <key> is not a byte array" when the record is another tensor.
    std::string readBytes(const std::string& key);
    /// FormatError "<path>: checkpoint has no rng/<device> record (made on another device?)".
    void readGenerators(c10::Device device);
    /// The FormatError for a checkpoint whose state cannot be used: "<path>: damaged checkpoint: <cause>".
    [[noreturn]] void damaged(const std::string& cause) const;

private:
    TrainingCheckpoint() = default;
    [[noreturn]] void unreadable(const c10::Error& e) const;
    [[noreturn]] void unwritable(const c10::Error& e) const;

    std::filesystem::path path_;
    torch::serialize::OutputArchive out_;
    std::unique_ptr<AtomicFile> staged_; ///< written by stage(), not yet published
    torch::serialize::InputArchive in_;
    nlohmann::ordered_json state_;
};

} // namespace nic
