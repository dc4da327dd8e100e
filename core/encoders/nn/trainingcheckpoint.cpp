#include "core/encoders/nn/trainingcheckpoint.h"

#include "core/base/atomicfile.h"
#include "core/base/error.h"

#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <mutex>

namespace nic {

namespace {

using ojson = nlohmann::ordered_json;

/// LibTorch's message without its backtrace, first line only (errors are one line).
std::string torchCause(const c10::Error& e) {
    std::string s = e.what_without_backtrace();
    const auto nl = s.find('\n');
    if (nl != std::string::npos)
        s.resize(nl);
    return s;
}

/// torch's default generators that a training run draws from, with their record names.
std::vector<std::pair<std::string, at::Generator>> defaultGenerators(c10::Device device) {
    std::vector<std::pair<std::string, at::Generator>> out;
    out.emplace_back("rng/cpu", at::globalContext().defaultGenerator(c10::Device(c10::kCPU)));
    if (device.is_cuda())
        out.emplace_back("rng/cuda", at::globalContext().defaultGenerator(device));
    return out;
}

/// The words for the first difference in a per-item array `key` of the identity, or "" when `key` is not one.
std::string itemDifference(const std::string& key, const ojson& old, const ojson& cur, const IdentityItems& items) {
    const std::string* element = nullptr;
    for (const auto& [entry, word] : items.entries)
        if (key == entry)
            element = &word;
    if (!element || !old.is_array())
        return {};
    if (old.size() != cur.size())
        return "the checkpoint has " + std::to_string(old.size()) + " " + items.noun + "s, this run " +
               std::to_string(cur.size());
    std::size_t i = 0;
    while (i < cur.size() && old[i] == cur[i])
        ++i;
    return *element + " of " + items.noun + " " + std::to_string(i + 1) + " (" + items.name(i) + ") is " +
           old[i].dump() + " in the checkpoint, " + cur[i].dump() + " now";
}

} // namespace

TrainingCheckpoint TrainingCheckpoint::open(const std::filesystem::path& path, c10::optional<c10::Device> device,
                                            const std::string& format) {
    TrainingCheckpoint c;
    c.path_ = path;
    const std::string src = path.string();
    try {
        c.in_.load_from(src, device);
        c10::IValue iv;
        if (!c.in_.try_read("state/json", iv) || !iv.isString())
            throw FormatError(src + ": not a " + format + " (no state/json record)");
        c.state_ = ojson::parse(iv.toStringRef());
    } catch (const c10::Error& e) {
        c.unreadable(e);
    } catch (const nlohmann::json::exception& e) {
        c.damaged(e.what());
    }
    return c;
}

void TrainingCheckpoint::checkIdentity(const std::filesystem::path& file, const ojson& stored, const ojson& now,
                                       const IdentityItems* items) {
    for (auto it = now.begin(); it != now.end(); ++it) {
        const std::string& key = it.key();
        const ojson& cur = it.value();
        const ojson old = stored.is_object() && stored.contains(key) ? stored.at(key) : ojson();
        if (old == cur)
            continue;
        std::string what = items ? itemDifference(key, old, cur, *items) : std::string();
        if (what.empty())
            what = key + " is " + (old.is_null() ? std::string("absent") : old.dump()) + " in the checkpoint, " +
                   cur.dump() + " now";
        throw InvalidArgument(file.string() + ": cannot resume with different parameters: " + what + kResumeHint);
    }
}

void TrainingCheckpoint::addModule(const std::string& key, const torch::nn::Module& module) {
    try {
        torch::serialize::OutputArchive archive;
        module.save(archive);
        out_.write(key, archive);
    } catch (const c10::Error& e) {
        unwritable(e);
    }
}

void TrainingCheckpoint::addOptimizer(const std::string& key, const torch::optim::Optimizer& optimizer) {
    try {
        torch::serialize::OutputArchive archive;
        optimizer.save(archive);
        out_.write(key, archive);
    } catch (const c10::Error& e) {
        unwritable(e);
    }
}

void TrainingCheckpoint::addBytes(const std::string& key, const std::string& bytes) {
    try {
        auto t = torch::empty({static_cast<std::int64_t>(bytes.size())}, torch::kUInt8);
        std::memcpy(t.data_ptr<std::uint8_t>(), bytes.data(), bytes.size());
        out_.write(key, t);
    } catch (const c10::Error& e) {
        unwritable(e);
    }
}

void TrainingCheckpoint::addGenerators(c10::Device device) {
    try {
        for (auto& [key, gen] : defaultGenerators(device)) {
            std::lock_guard<std::mutex> lock(gen.mutex());
            out_.write(key, gen.get_state());
        }
    } catch (const c10::Error& e) {
        unwritable(e);
    }
}

void TrainingCheckpoint::save(const std::string& state) {
    stage(state);
    publish();
}

void TrainingCheckpoint::stage(const std::string& state) {
    auto file = std::make_unique<AtomicFile>(path_);
    WriteBehindFile sink(*file, "cannot write checkpoint"); // the disk writes while LibTorch serialises
    try {
        out_.write("state/json", c10::IValue(state));
        out_.save_to([&sink](const void* data, std::size_t n) { return sink.write(data, n); });
    } catch (const c10::Error& e) {
        unwritable(e);
    }
    sink.close();
    file->sync();
    staged_ = std::move(file);
}

void TrainingCheckpoint::publish() {
    if (!staged_)
        throw Error(path_.string() + ": cannot publish checkpoint: nothing was staged");
    staged_->publish();
    staged_.reset();
}

void TrainingCheckpoint::readModule(const std::string& key, torch::nn::Module& module) {
    try {
        torch::serialize::InputArchive archive;
        in_.read(key, archive);
        module.load(archive);
    } catch (const c10::Error& e) {
        unreadable(e);
    }
}

void TrainingCheckpoint::readOptimizer(const std::string& key, torch::optim::Optimizer& optimizer) {
    try {
        torch::serialize::InputArchive archive;
        in_.read(key, archive);
        optimizer.load(archive);
    } catch (const c10::Error& e) {
        unreadable(e);
    }
}

std::string TrainingCheckpoint::readBytes(const std::string& key) {
    try {
        torch::Tensor t;
        in_.read(key, t);
        t = t.to(torch::kCPU).contiguous();
        if (t.scalar_type() != torch::kUInt8 || t.dim() != 1)
            damaged(key + " is not a byte array");
        return std::string(reinterpret_cast<const char*>(t.data_ptr<std::uint8_t>()), static_cast<std::size_t>(t.numel()));
    } catch (const c10::Error& e) {
        unreadable(e);
    }
}

void TrainingCheckpoint::readGenerators(c10::Device device) {
    try {
        for (auto& [key, gen] : defaultGenerators(device)) {
            torch::Tensor saved;
            if (!in_.try_read(key, saved))
                throw FormatError(path_.string() + ": checkpoint has no " + key + " record (made on another device?)");
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(saved.to(torch::kCPU));
        }
    } catch (const c10::Error& e) {
        unreadable(e);
    }
}

void TrainingCheckpoint::damaged(const std::string& cause) const {
    throw FormatError(path_.string() + ": damaged checkpoint: " + cause);
}

void TrainingCheckpoint::unreadable(const c10::Error& e) const {
    throw IoError(path_.string() + ": cannot read checkpoint: " + torchCause(e));
}

void TrainingCheckpoint::unwritable(const c10::Error& e) const {
    throw IoError(path_.string() + ": cannot write checkpoint: " + torchCause(e));
}

} // namespace nic
