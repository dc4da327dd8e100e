// nic — the NIC Studio command-line tool. Exit codes: 0 ok, 1 runtime error (a file missing, unreadable or
// with bad contents: nic::IoError, nic::FormatError, ...), 2 usage error (options: CLI11, nic::InvalidArgument).
#include "commands.h"
#include "progressbar.h"

#include "core/base/error.h"
#include "core/base/untrustedfileprobe.h"
#include "core/base/version.h"

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <exception>

int main(int argc, char** argv) {
    // Past a file-size limit (ulimit -f, a quota) write() then fails with EFBIG and the command reports it
    // and removes its temporary output, instead of being killed by SIGXFSZ with a partial file left over.
    std::signal(SIGXFSZ, SIG_IGN);
    // Compressed slides and heatmaps from outside are read first by nic-probe, so a file that crashes
    // HDF5 gives an error instead of a crash (core/base/untrustedfileprobe.h).
    nic::UntrustedFileProbe::enable();
    CLI::App app{"nic — Neural Image Compression for whole-slide images (NIC Studio)", "nic"};
    app.set_version_flag("--version", std::string("nic ") + nic::kVersion);
    app.require_subcommand(1);
    app.fallthrough(false);
    nic::cli::addInfoCommand(app);
    nic::cli::addTissueCommand(app);
    nic::cli::addSynthCommand(app);
    nic::cli::addCompressCommand(app);
    nic::cli::addEvalHeatmapCommand(app);
    nic::cli::addSubmitCommand(app);
    nic::cli::addStatusCommand(app);
    nic::cli::addAnnotationCommands(app);
#ifdef NIC_WITH_TORCH
    nic::cli::addNeuralCommands(app);
    nic::cli::addSlideModelCommands(app);
#endif

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        // --help and --version arrive here too, with exit code 0.
        if (e.get_exit_code() == 0)
            return app.exit(e);
        std::fprintf(stderr, "nic: usage error: %s\nRun 'nic --help' (or 'nic COMMAND --help') for usage.\n",
                     e.what());
        return 2;
    } catch (const nic::cli::ExitStatus& e) {
        return e.code;
    } catch (const nic::FormatError& e) {
        // Bad file contents are never a usage error, whatever the hierarchy above them becomes.
        nic::cli::finishProgressLine();
        std::fprintf(stderr, "nic: error: %s\n", e.what());
        return 1;
    } catch (const nic::InvalidArgument& e) {
        nic::cli::finishProgressLine();
        std::fprintf(stderr, "nic: usage error: %s\n", e.what());
        return 2;
    } catch (const nic::Cancelled&) {
        nic::cli::finishProgressLine();
        std::fprintf(stderr, "nic: error: cancelled\n");
        return 1;
    } catch (const std::exception& e) {
        nic::cli::finishProgressLine();
        std::fprintf(stderr, "nic: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
