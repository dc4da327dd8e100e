#pragma once
// Untrusted files are read first in a child process (issue 19). HDF5 1.10.8 crashes or loops on some
// damaged files before any of our checks run (fuzz/README.md); a crash there must not take down `nic`
// or nic-studio (with its unsaved annotations). So, when a front-end enables this probe, the core
// readers of files that come from outside (readLatentGridMeta, LatentGridReader, readHeatmapFile) first
// have the small `nic-probe` executable (torch- and Qt-free, links core only) validate the whole file
// with the same readers, under a limit on its processor time, without core dumps: metadata, attributes,
// dataset types and shapes, every chunk index, and every stored chunk decompressed once (a grid's values
// are not converted or kept: app/nic-probe/main.cpp says what exactly). A crash or a time-out in
// the child becomes a FormatError naming the file and what happened, and the calling process never runs
// the crashing code on that file. The child is started with posix_spawn (never fork() of a
// multi-threaded process, whose locks a forked child could inherit held).
//
// Results are cached per (path, size, mtime, kind), so each file is probed once per process; files
// this process has just written are registered as trusted and not probed. Thread-safe.
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

namespace nic {

/// What a probed file is expected to be. `Hdf5` lets the probe decide between the two HDF5 formats.
/// A compressed slide is checked in two parts: `LatentGrid` is everything a reader reads first (metadata,
/// variant 0, tissue, flags; the viewer reads no more), `LatentGridVariants` the other dihedral variants,
/// checked when a reader first asks for one (training, prediction): a file of 8 variants opens 8× sooner.
enum class UntrustedKind { LatentGrid, LatentGridVariants, Heatmap, Hdf5 };

/// "grid", "grid-variants", "heatmap", "hdf5": the kind's name on nic-probe's command line.
const char* probeKindName(UntrustedKind kind);
/// The kind named `name`, or nothing.
std::optional<UntrustedKind> probeKindFromName(const std::string& name);

/// How a probe ended (for callers that want more than the exception).
struct ProbeOutcome {
    bool ok = false;
    /// For ok: "grid" or "heatmap" (what the file turned out to be). Otherwise the one-line error.
    std::string message;
    /// Not ok because of what the file holds: the reader refused its contents (FormatError), or reading
    /// it crashed or did not finish. False when it could not be read or checked at all (IoError).
    bool damaged = false;
};

class UntrustedFileProbe {
public:
    /// Turns probing on for this process. `probeExecutable` empty: found on first use, in this order:
    /// $NIC_PROBE, beside the running executable (/proc/self/exe), <prefix>/libexec/nic-studio/, and
    /// the build tree's app/nic-probe/.
    static void enable(const std::filesystem::path& probeExecutable = {});
    /// Turns probing off (the default: tests and the probe itself read directly).
    static void disable();
    static bool enabled();

    /// When enabled: probes `path` as `kind` (or returns the cached outcome) and throws, naming the file,
    /// FormatError when the probe refused its contents (the reader's own message), crashed or ran out of
    /// time, and IoError when the reader could not read it or the probe could not be started. No-op when
    /// disabled or when the file was registered with trust().
    static void check(UntrustedKind kind, const std::filesystem::path& path);

    /// Probes now, whether enabled or not (uses the cache). Never throws for a bad file.
    static ProbeOutcome probe(UntrustedKind kind, const std::filesystem::path& path);

    /// Registers a file this process has just written (its current size and mtime) as safe to read.
    static void trust(const std::filesystem::path& path);

    /// Time limit for one file: 5 s + 4 s per MiB of the file (compressed grids are small on disk but
    /// slow to decompress); $NIC_PROBE_TIMEOUT_S replaces the 5 s. It counts the probe's processor time,
    /// so a busy machine does not make a valid file fail; a probe that waits instead of computing is
    /// stopped after 4× the limit without processor time, and any probe after 30× the limit.
    static std::chrono::milliseconds timeLimitFor(std::uintmax_t fileBytes);

    /// The probe executable that check() uses (after enable()), or empty when none was found.
    static std::filesystem::path executable();

    /// Forgets every cached outcome and trusted file (for tests).
    static void clearCache();
};

} // namespace nic
