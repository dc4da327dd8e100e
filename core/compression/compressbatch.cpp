// Compression of a list of slides (a cohort, or one shard of it): the one cohort-level loop that `nic compress`,
// nic-studio's Compress job and the cluster path share (core/compression/compressor.h); compressSlide() does each slide.
#include "core/compression/compressor.h"

#include "core/base/error.h"

#include <map>
#include <stdexcept>

namespace nic {

Shard parseShard(const std::string& text) {
    const auto slash = text.find('/');
    Shard s;
    try {
        if (slash == std::string::npos)
            throw std::invalid_argument("no slash");
        std::size_t used = 0;
        s.index = std::stoi(text.substr(0, slash), &used);
        if (used != slash)
            throw std::invalid_argument("trailing");
        const std::string n = text.substr(slash + 1);
        s.count = std::stoi(n, &used);
        if (used != n.size())
            throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        throw InvalidArgument("--shard: expected i/n (e.g. 0/4), got '" + text + "'");
    }
    if (s.count < 1 || s.index < 0 || s.index >= s.count)
        throw InvalidArgument("--shard " + text + ": need 0 <= i < n");
    return s;
}

void checkDistinctOutputs(const std::vector<std::filesystem::path>& slides, const std::filesystem::path& outDir) {
    std::map<std::filesystem::path, std::filesystem::path> outputs;
    for (const auto& s : slides) {
        const auto out = compressedPathFor(s, outDir);
        const auto [it, inserted] = outputs.emplace(out, s);
        if (!inserted && it->second != s)
            throw InvalidArgument("slides " + it->second.string() + " and " + s.string() + " would both write " +
                                  out.string() + " (rename one, or compress them into different output folders)");
    }
}

std::vector<BatchItemResult> compressSlides(const std::vector<std::filesystem::path>& slides, PatchEncoder& encoder,
                                            const std::filesystem::path& outDir, const CompressOptions& options,
                                            const Shard& shard, JobContext& job, const CompressEvents& events) {
    if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
        throw InvalidArgument("invalid shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count));
    checkDistinctOutputs(slides, outDir);
    std::vector<std::size_t> mine;
    for (std::size_t i = 0; i < slides.size(); ++i)
        if (shard.contains(i))
            mine.push_back(i);
    if (!mine.empty())
        std::filesystem::create_directories(outDir);
    std::vector<BatchItemResult> results;
    const std::size_t n = mine.size();
    for (std::size_t k = 0; k < n; ++k) {
        job.throwIfCancelled();
        const auto& slide = slides[mine[k]];
        BatchItemResult r;
        r.slide = slide;
        r.output = compressedPathFor(slide, outDir);
        if (events.started)
            events.started(k, n, slide);
        JobContext child(job, static_cast<double>(k) / static_cast<double>(n),
                         static_cast<double>(k + 1) / static_cast<double>(n),
                         (n > 1 ? "slide " + std::to_string(k + 1) + "/" + std::to_string(n) + " " : std::string()) +
                             slide.filename().string() + ": ");
        try {
            r.result = compressSlide(slide, encoder, r.output, options, child);
        } catch (const Cancelled&) {
            throw;
        } catch (const std::exception& e) {
            // Also InvalidArgument (e.g. unknown mpp): in a batch it concerns one slide; report and go on.
            const std::string what = e.what();
            r.error = what.rfind(slide.string(), 0) == 0 ? what : slide.string() + ": " + what;
        }
        job.progress(static_cast<std::int64_t>(k + 1), static_cast<std::int64_t>(n), "done");
        if (events.finished)
            events.finished(k, n, r);
        results.push_back(std::move(r));
    }
    return results;
}

std::string batchFailureMessage(const std::vector<BatchItemResult>& items) {
    std::vector<const BatchItemResult*> failed;
    for (const auto& i : items)
        if (!i.error.empty())
            failed.push_back(&i);
    if (failed.empty())
        return {};
    std::string msg = std::to_string(failed.size()) + " of " + std::to_string(items.size()) + " slide(s) failed:";
    for (const auto* f : failed)
        msg += "\n  " + f->error;
    return msg;
}

} // namespace nic
