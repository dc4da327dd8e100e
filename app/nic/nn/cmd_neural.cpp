// Neural subcommands: make-bank, train-encoder, embed, import-keras, eval-encoder, encoder-info.
// Uses only the torch-free headers of the nn/ halves of core/, so this file compiles without <torch/torch.h>.
#include "../commands.h"
#include "../progressbar.h"

#include "core/base/atomicfile.h"
#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/imaging/imageio.h"
#include "core/encoders/nn/encoders.h"
#include "core/encoders/nn/evaluate.h"
#include "core/encoders/nn/patchbank.h"
#include "core/encoders/nn/trainer.h"
#include "core/encoders/trainingbudget.h"
#include "core/slide/resample.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

namespace nic::cli {

namespace {

void addCompute(CLI::App* cmd, ComputeOptions& c) {
    cmd->add_option("--device", c.device, "auto, cpu or cuda")->capture_default_str();
    cmd->add_option("--threads", c.threads, "LibTorch and OpenBLAS threads (0: one per physical core, or OMP_NUM_THREADS when set)")->capture_default_str();
}

/// A bank from --bank FILE or --images DIR (labels.csv inside, images resized to P).
PatchBank loadBank(const std::string& bank, const std::string& images, int patchSize, JobContext& ctx,
                   const char* what) {
    if (!bank.empty() && !images.empty())
        throw InvalidArgument(std::string("give either a bank or an image folder for the ") + what + ", not both");
    if (!bank.empty()) {
        PatchBank b = PatchBank::load(bank);
        if (b.empty()) // not "needs --bank": the option was given, the file is what is wrong
            throw FormatError(bank + ": the patch bank holds no patches");
        return b;
    }
    if (!images.empty())
        return patchBankFromFolder(images, patchSize, ctx);
    return PatchBank();
}

void addMakeBank(CLI::App& root) {
    auto* cmd = root.add_subcommand("make-bank", "Build a patch bank (decoded once) from slides or a folder of images, "
                                                 "for train-encoder and eval-encoder");
    struct Options {
        std::string out, images, labels, cohort;
        std::vector<std::string> slides, annotations, groups;
        SlideBankOptions bank;
        double mpp = 0.0;
        bool unlabelled = false, quiet = false, balance = false, noNeighbours = false;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--out", o->out, "Bank file to write (.nicbank)")->required();
    cmd->add_option("--images", o->images, "Folder of PNG/JPEG patches with labels.csv (file,label)");
    cmd->add_option("--labels", o->labels, "labels.csv to use instead of <images>/labels.csv");
    cmd->add_option("--slides", o->slides, "Slides to take grid patches from");
    cmd->add_option("--annotations", o->annotations, "ASAP XML per slide, in the order of --slides ('' for none)");
    cmd->add_option("--cohort", o->cohort, "cohort.csv (columns slide, label[, annotations]) instead of --slides");
    cmd->add_option("--patch-size", o->bank.grid.patchSize, "P in pixels")->capture_default_str();
    cmd->add_option("--stride", o->bank.grid.stride, "Grid stride S in pixels")->capture_default_str();
    cmd->add_option("--target-mpp", o->bank.grid.mpp, "Resolution of the patches (um/px)")->capture_default_str();
    cmd->add_option("--mpp", o->mpp, "Level-0 um/px of slides without resolution metadata");
    cmd->add_option("--min-tissue", o->bank.minTissue, "Minimum tissue fraction of a grid cell")->capture_default_str();
    cmd->add_option("--groups", o->groups, "Annotation groups that mark tumour (default: all)");
    cmd->add_option("--max-per-slide", o->bank.maxPerSlide,
                    "At most this many patches per slide: random anchor cells with their in-tissue 4-neighbours "
                    "(for contrastive pairs) (0: all)")->capture_default_str();
    cmd->add_flag("--no-neighbours", o->noNeighbours, "With --max-per-slide: a plain random subset, without neighbours");
    cmd->add_flag("--balance", o->balance, "Equal patch counts per class (larger classes undersampled with --seed)");
    cmd->add_option("--seed", o->bank.seed, "Seed of the subset and of --balance")->capture_default_str();
    cmd->add_flag("--unlabelled", o->unlabelled, "Do not label slide patches (unsupervised training)");
    cmd->add_flag("--quiet", o->quiet, "No progress output");
    cmd->callback([o] {
        auto ctx = makeTerminalContext(o->quiet);
        PatchBank bank;
        if (!o->images.empty()) {
            bank = patchBankFromFolder(o->images, o->bank.grid.patchSize, *ctx, o->labels);
        } else {
            std::vector<SlideBankSource> sources;
            if (!o->cohort.empty()) {
                const Cohort cohort = readCohort(o->cohort);
                const auto dir = std::filesystem::path(o->cohort).parent_path();
                for (const auto& e : cohort.entries) {
                    SlideBankSource s{e.slide, {}};
                    auto it = e.extra.find("annotations");
                    if (it != e.extra.end() && !it->second.empty())
                        s.annotations = std::filesystem::path(it->second).is_absolute() ? std::filesystem::path(it->second)
                                                                                         : dir / it->second;
                    sources.push_back(s);
                }
            }
            if (!o->annotations.empty() && o->annotations.size() != o->slides.size())
                throw InvalidArgument("--annotations needs one entry per slide");
            for (std::size_t i = 0; i < o->slides.size(); ++i)
                sources.push_back({o->slides[i], o->annotations.empty() ? std::string() : o->annotations[i]});
            if (sources.empty())
                throw InvalidArgument("make-bank needs --images, --slides or --cohort");
            o->bank.labelled = !o->unlabelled;
            o->bank.keepNeighbours = !o->noNeighbours;
            o->bank.groups = o->groups;
            if (o->mpp > 0)
                o->bank.slideMpp = o->mpp;
            bank = patchBankFromSlides(sources, o->bank, *ctx);
        }
        if (o->balance) {
            if (o->unlabelled)
                throw InvalidArgument("--balance needs labelled patches (drop --unlabelled)");
            const auto before = bank.labelCounts();
            bank = bank.balanced(o->bank.seed);
            const auto after = bank.labelCounts();
            std::string line = "balanced:";
            for (std::size_t c = 0; c < after.size() && c < bank.classNames().size(); ++c)
                line += std::string(c == 0 ? " kept " : ", ") + std::to_string(after[c]) + " of " +
                        std::to_string(c < before.size() ? before[c] : 0) + " " + bank.classNames()[c];
            ctx->log(line);
        }
        bank.save(o->out);
        finishProgressLine();
        std::printf("%s: %zu patches of %dx%d", o->out.c_str(), bank.size(), bank.patchSize(), bank.patchSize());
        const auto counts = bank.labelCounts();
        for (std::size_t c = 0; c < counts.size() && c < bank.classNames().size(); ++c)
            std::printf("%s %s: %zu", c == 0 ? ";" : ",", bank.classNames()[c].c_str(), counts[c]);
        std::printf("\n");
    });
}

void addTrainEncoder(CLI::App& root) {
    auto* cmd = root.add_subcommand("train-encoder", "Train one of the paper's encoders (vae, contrastive, bigan, "
                                                     "supervised-tumor, supervised-tissue) on a patch bank");
    struct Options {
        std::string kind, bank, images, valBank, valImages;
        TrainOptions train;
        std::string out, checkpoint, budget = "default", result;
        int patchSize = 128;
        bool quiet = false;
        CLI::Option *epochs = nullptr, *steps = nullptr, *stepsPerEpoch = nullptr;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--kind", o->kind, "vae, contrastive, bigan, supervised-tumor or supervised-tissue")->required();
    cmd->add_option("--bank", o->bank, "Training patch bank (from make-bank)");
    cmd->add_option("--images", o->images, "Or: folder of patches with labels.csv");
    cmd->add_option("--val-bank", o->valBank, "Validation bank (default: 10% of the training bank)");
    cmd->add_option("--val-images", o->valImages, "Or: validation folder with labels.csv");
    cmd->add_option("--patch-size", o->patchSize, "P when reading --images")->capture_default_str();
    cmd->add_option("--out", o->out, "Encoder file to write (best epoch)")->required();
    cmd->add_option("--checkpoint", o->checkpoint, "Checkpoint file (default: OUT.ckpt)");
    cmd->add_option("--code-size", o->train.codeSize, "C, the embedding length")->capture_default_str();
    cmd->add_option("--budget", o->budget,
                    "Budget preset: default (20 epochs), paper (supp. 7: bigan 200000 steps, the others until the "
                    "learning-rate floor) or demo (90 steps, 3 epochs of 30); --epochs, --steps and "
                    "--steps-per-epoch given explicitly override the preset")
        ->capture_default_str();
    o->epochs = cmd->add_option("--epochs", o->train.epochs, "Maximum epochs (0: no epoch cap)")
                    ->capture_default_str()
                    ->check(CLI::NonNegativeNumber);
    o->steps = cmd->add_option("--steps", o->train.maxSteps,
                               "Total optimisation steps (mini-batches) over the run (0: no step cap); training ends "
                               "at the first of: learning-rate floor, --steps, --epochs")
                   ->check(CLI::NonNegativeNumber);
    cmd->add_option("--batch-size", o->train.batchSize, "Mini-batch size")->capture_default_str();
    o->stepsPerEpoch = cmd->add_option("--steps-per-epoch", o->train.stepsPerEpoch, "Steps per epoch (0: one pass)")
                           ->capture_default_str()
                           ->check(CLI::NonNegativeNumber);
    cmd->add_option("--lr", o->train.learningRate, "Start learning rate (0: the paper's)")->capture_default_str();
    cmd->add_option("--min-lr", o->train.minLearningRate, "Stop when the learning rate would fall below")->capture_default_str();
    cmd->add_option("--patience", o->train.patience, "Epochs without improvement before lr/10")->capture_default_str();
    cmd->add_option("--augment", o->train.augmentStrength, "Augmentation strength (-1: per kind)")->capture_default_str();
    cmd->add_option("--seed", o->train.seed, "Random seed")->capture_default_str();
    cmd->add_option("--result", o->result, "Also write the result (stop reason, epochs, steps, history) as JSON");
    cmd->add_flag("--resume", o->train.resume, "Continue from the checkpoint when it exists");
    cmd->add_flag("--quiet", o->quiet, "No progress bar");
    addCompute(cmd, o->train.compute);
    cmd->callback([o] {
        auto kind = parseEncoderKind(o->kind);
        if (!kind)
            throw InvalidArgument("unknown encoder kind '" + o->kind + "'");
        o->train.kind = *kind;
        const TrainingBudget budget = trainingBudget(o->budget, toString(*kind));
        if (o->epochs->count() == 0)
            o->train.epochs = budget.epochs;
        if (o->steps->count() == 0)
            o->train.maxSteps = budget.steps;
        if (o->stepsPerEpoch->count() == 0)
            o->train.stepsPerEpoch = budget.stepsPerEpoch;
        o->train.out = o->out;
        o->train.checkpoint = o->checkpoint;
        // The device first: a usage error (e.g. cuda without CUDA) before any file is read.
        const std::string device = configureCompute(o->train.compute); // before computeThreads() reads it
        auto ctx = makeTerminalContext(o->quiet);
        const PatchBank train = loadBank(o->bank, o->images, o->patchSize, *ctx, "training set");
        if (train.empty())
            throw InvalidArgument("train-encoder needs --bank or --images");
        const PatchBank val = loadBank(o->valBank, o->valImages, train.patchSize(), *ctx, "validation set");
        ctx->log("training " + o->kind + " on " + std::to_string(train.size()) + " patches of " +
                 std::to_string(train.patchSize()) + " px, device " + device + ", " + std::to_string(computeThreads()) +
                 " threads");
        const TrainResult r = trainEncoder(o->train, train, val, *ctx);
        finishProgressLine();
        std::printf("encoder: %s\nkind: %s\nhash: %s\nepochs: %d\nsteps: %lld\nstopped: %s\n", r.encoder.source.c_str(),
                    r.encoder.name.c_str(), r.encoder.hash.c_str(), r.epochsRun, static_cast<long long>(r.stepsRun),
                    toString(r.stopReason));
        if (r.metric != "none")
            std::printf("best %s: %.5f\n", r.metric.c_str(), r.bestValidation);
        if (!o->result.empty())
            writeFileAtomically(o->result, trainResultJson(r));
    });
}

void addEmbed(CLI::App& root) {
    auto* cmd = root.add_subcommand("embed", "Print the embedding of each image as CSV (one row per image); images that "
                                             "are not PxP are resized");
    struct Options {
        std::string encoder;
        std::vector<std::string> images;
        ComputeOptions compute;
        bool header = true;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--encoder", o->encoder, "Encoder file, or mean-rgb[:P]")->required();
    cmd->add_option("IMAGE", o->images, "PNG/JPEG images")->required();
    cmd->add_flag("!--no-header", o->header, "Omit the header row");
    addCompute(cmd, o->compute);
    cmd->callback([o] {
        auto enc = loadEncoder(o->encoder, o->compute);
        const int p = enc->info().patchSize, c = enc->info().codeSize;
        if (o->header) {
            std::printf("image");
            for (int i = 0; i < c; ++i)
                std::printf(",e%d", i);
            std::printf("\n");
        }
        for (const auto& path : o->images) {
            Image im = readImage(path, 3);
            if (im.width != p || im.height != p)
                im = resize(im, p, p);
            const auto e = enc->encode(std::vector<Image>{im});
            std::printf("%s", path.c_str());
            for (float v : e)
                std::printf(",%.9g", static_cast<double>(v));
            std::printf("\n");
        }
    });
}

void addImportKeras(CLI::App& root) {
    auto* cmd = root.add_subcommand("import-keras", "Convert one of the NIC authors' Keras/HDF5 encoders into an encoder file");
    struct Options {
        std::string model, out;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("MODEL", o->model, "Keras 2 HDF5 model (e.g. encoder_bigan.h5)")->required();
    cmd->add_option("--out", o->out, "Encoder file to write")->required();
    cmd->callback([o] {
        const EncoderInfo info = importKerasEncoder(o->model, o->out);
        std::printf("encoder: %s\nname: %s\npatch size: %d\ncode size: %d\nhash: %s\n", info.source.c_str(),
                    info.name.c_str(), info.patchSize, info.codeSize, info.hash.c_str());
    });
}

void addEncoderInfo(CLI::App& root) {
    auto* cmd = root.add_subcommand("encoder-info", "Describe an encoder file (name, P, C, content hash)");
    auto path = std::make_shared<std::string>();
    cmd->add_option("ENCODER", *path, "Encoder file, or mean-rgb[:P]")->required();
    cmd->callback([path] {
        const EncoderInfo info = readEncoderInfo(*path);
        std::printf("encoder: %s\nname: %s\npatch size: %d\ncode size: %d\nmpp: %g\nhash: %s\n", info.source.c_str(),
                    info.name.c_str(), info.patchSize, info.codeSize, info.mpp, info.hash.c_str());
    });
}

void addEvalEncoder(CLI::App& root) {
    auto* cmd = root.add_subcommand("eval-encoder", "Patch-level evaluation (paper Table 1): frozen encoder + MLP on a "
                                                    "labelled patch set; accuracy overall and per class, confusion matrix");
    struct Options {
        std::string encoder, bank, images, testBank, testImages, confusion, json, split = "auto";
        double testFraction = 0.3;
        EvalOptions eval;
        bool quiet = false;
    };
    auto o = std::make_shared<Options>();
    cmd->add_option("--encoder", o->encoder, "Encoder file, or mean-rgb[:P]")->required();
    cmd->add_option("--bank", o->bank, "Labelled patch bank");
    cmd->add_option("--images", o->images, "Or: folder of patches with labels.csv");
    cmd->add_option("--test-bank", o->testBank, "Separate test bank (default: split off --test-fraction)");
    cmd->add_option("--test-images", o->testImages, "Or: separate test folder with labels.csv");
    cmd->add_option("--test-fraction", o->testFraction, "Share held out for testing when no test set is given")->capture_default_str();
    cmd->add_option("--split", o->split,
                    "Train/test (and validation) split: source (no slide/folder on both sides), patch (random "
                    "patches), auto (source when the bank knows >= 2 sources)")->capture_default_str();
    cmd->add_option("--confusion", o->confusion, "Write the confusion matrix to this CSV");
    cmd->add_option("--json", o->json, "Write the result (accuracy, balanced accuracy, confusion) to this JSON file");
    cmd->add_option("--epochs", o->eval.epochs, "Maximum MLP epochs")->capture_default_str();
    cmd->add_option("--seed", o->eval.seed, "Random seed (splits and MLP)")->capture_default_str();
    cmd->add_flag("--quiet", o->quiet, "No progress bar");
    addCompute(cmd, o->eval.compute);
    cmd->callback([o] {
        const auto split = parseEvalSplit(o->split);
        if (!split)
            throw InvalidArgument("--split must be auto, source or patch, not '" + o->split + "'");
        o->eval.validationSplit = *split;
        auto ctx = makeTerminalContext(o->quiet);
        auto enc = loadEncoder(o->encoder, o->eval.compute);
        const int p = enc->info().patchSize;
        PatchBank all = loadBank(o->bank, o->images, p, *ctx, "training set");
        if (all.empty())
            throw InvalidArgument("eval-encoder needs --bank or --images");
        PatchBank test = loadBank(o->testBank, o->testImages, p, *ctx, "test set");
        PatchBank train;
        std::string splitLine = "separate test set";
        if (test.empty()) {
            bool bySource = false;
            std::tie(train, test) = evaluationSplit(all, o->testFraction, o->eval.seed + 101, *split, bySource);
            splitLine = bySource ? "by source (" + std::to_string(train.knownSourceCount()) + " train, " +
                                       std::to_string(test.knownSourceCount()) + " test; none on both sides)"
                                 : std::string("by patch (a source can be on both sides)");
        } else {
            train = std::move(all);
        }
        const EvalResult r = evaluateEncoder(*enc, train, test, o->eval, *ctx);
        finishProgressLine();
        std::printf("encoder: %s (%s)\npatches: %zu train, %zu validation, %zu test\n", enc->info().name.c_str(),
                    enc->info().hash.c_str(), r.trainCount, r.validationCount, r.testCount);
        std::printf("test split: %s; validation split: by %s\n", splitLine.c_str(),
                    r.validationBySource ? "source" : "patch");
        std::printf("validation accuracy: %.4f (epoch %d)\ntest accuracy: %.4f\ntest balanced accuracy: %.4f\n",
                    r.validationAccuracy, r.bestEpoch, r.accuracy, r.balancedAccuracy);
        for (std::size_t c = 0; c < r.classNames.size(); ++c)
            std::printf("  %s: %.4f\n", r.classNames[c].c_str(), r.perClassAccuracy[c]);
        std::printf("confusion (rows true, columns predicted):\n%s", r.confusionCsv().c_str());
        if (!o->confusion.empty())
            writeFileAtomically(o->confusion, r.confusionCsv());
        if (!o->json.empty()) {
            auto j = nlohmann::json::parse(r.toJson());
            j["encoder"] = {{"name", enc->info().name}, {"hash", enc->info().hash}};
            j["test_split"] = splitLine;
            writeFileAtomically(o->json, j.dump(2) + "\n");
        }
    });
}

} // namespace

void addNeuralCommands(CLI::App& root) {
    addMakeBank(root);
    addTrainEncoder(root);
    addEmbed(root);
    addImportKeras(root);
    addEncoderInfo(root);
    addEvalEncoder(root);
}

} // namespace nic::cli
