// nic submit / nic status without a cluster: the generated batch script, the Slurm output parsers, the
// status of a recorded folder, and submissions refused before anything is written.
#include "testsupport.h"

#include "core/base/error.h"
#include "core/cluster/slurm.h"
#include "core/cluster/submitfolder.h"

#include <fstream>
#include <nlohmann/json.hpp>

using nic::test::nicExecutable;
using nic::test::runCommand;
using nic::test::TempDir;
namespace fs = std::filesystem;

namespace {
void touch(const fs::path& p, const std::string& text = "x") {
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
}
} // namespace

TEST(Slurm, ShellQuote) {
    EXPECT_EQ(nic::shellQuote("/data/slide-1.svs"), "/data/slide-1.svs");
    EXPECT_EQ(nic::shellQuote("a b"), "'a b'");
    EXPECT_EQ(nic::shellQuote("it's"), "'it'\\''s'");
    EXPECT_EQ(nic::shellQuote(""), "''");
    EXPECT_EQ(nic::shellQuote("$HOME"), "'$HOME'");
}

TEST(Slurm, RenderScriptHasOneSbatchLinePerSetting) {
    nic::SlurmJobScript job;
    job.jobName = "nic-compress";
    job.tasks = 4;
    job.parallel = 2;
    job.output = "/out/.nic-submit/batch-1/logs/task-%a.out";
    job.body = "echo hi";
    nic::SlurmOptions o;
    o.partition = "gpu";
    o.time = "1:00:00";
    o.cpusPerTask = 2;
    o.memory = "8G";
    o.account = "path lab";
    o.extraArgs = {"--qos=long"};
    EXPECT_EQ(nic::renderSlurmScript(job, o), "#!/bin/bash\n"
                                              "#SBATCH --job-name=nic-compress\n"
                                              "#SBATCH --array=0-3%2\n"
                                              "#SBATCH --output=/out/.nic-submit/batch-1/logs/task-%a.out\n"
                                              "#SBATCH --partition=gpu\n"
                                              "#SBATCH --time=1:00:00\n"
                                              "#SBATCH --cpus-per-task=2\n"
                                              "#SBATCH --mem=8G\n"
                                              "#SBATCH --account='path lab'\n"
                                              "#SBATCH --qos=long\n"
                                              "set -u\n"
                                              "echo hi\n");
    job.tasks = 0;
    job.dependency = "afterok:17";
    const auto merge = nic::renderSlurmScript(job, {});
    EXPECT_EQ(merge.find("--array"), std::string::npos);
    EXPECT_NE(merge.find("#SBATCH --dependency=afterok:17\n"), std::string::npos);
}

TEST(Slurm, ParseSqueueAndSacct) {
    const auto live = nic::parseSqueue("12_0 RUNNING\n12_[2-3,5%2] PENDING\n13 PENDING\n\n");
    EXPECT_EQ(live, (nic::SlurmStates{{"12_0", "RUNNING"}, {"12_2", "PENDING"}, {"12_3", "PENDING"},
                                      {"12_5", "PENDING"}, {"13", "PENDING"}}));
    const auto ended = nic::parseSacct("12_0|COMPLETED\n12_1|CANCELLED by 0\n12_2|FAILED\n14|TIMEOUT\n");
    EXPECT_EQ(ended, (nic::SlurmStates{{"12_0", "COMPLETED"}, {"12_1", "CANCELLED"}, {"12_2", "FAILED"},
                                       {"14", "TIMEOUT"}}));
    EXPECT_TRUE(nic::isLiveSlurmState("PENDING"));
    EXPECT_TRUE(nic::isLiveSlurmState("RUNNING"));
    EXPECT_FALSE(nic::isLiveSlurmState("CANCELLED"));
    EXPECT_FALSE(nic::isLiveSlurmState("ENDED"));
}

TEST(Slurm, RunProgramCapturesBothStreamsAndTheExitStatus) {
    const auto r = nic::runProgram({"sh", "-c", "echo out; echo err >&2; exit 3"});
    EXPECT_EQ(r.exitCode, 3);
    EXPECT_EQ(r.out, "out\n");
    EXPECT_EQ(r.err, "err\n");
    EXPECT_EQ(nic::test::errorOf<nic::Error>([] { nic::runProgram({"no-such-program-nic"}); }),
              "no-such-program-nic not found on PATH");
}

// The four states from the folder's files, with the task that had each item and its recorded exit.
TEST(SubmitFolder, StatusFromRecordsAndOutputs) {
    TempDir tmp;
    const fs::path out = tmp / "heat";
    nic::SubmitFolder folder(out);
    const std::vector<nic::SubmitItem> items = {{"a", "/g/a.h5"}, {"b", "/g/b.h5"}, {"c", "/g/c.h5"}, {"d", "/g/d.h5"}};
    const int batch = folder.createBatch(items);
    EXPECT_EQ(batch, 1);
    folder.recordSubmission(nic::SubmitCommand::GradCam, {"_heatmap.h5", "_gradcam.png"}, items, {{"41", 1, 2, "tasks"}});
    touch(out / "a_heatmap.h5");
    touch(out / "a_gradcam.png");
    touch(out / "b_heatmap.h5"); // png not yet written
    touch(folder.stateDir() / "items" / "c.failed", "/g/c.h5: not a compressed slide\n");
    touch(folder.batchDir(1) / "task-0.exit", "1\n");
    nic::SlurmQuery slurm;
    slurm.squeueAnswered = true;
    slurm.states["41_1"] = "RUNNING";
    const auto st = folder.status(slurm);
    ASSERT_EQ(st.items.size(), 4U);
    EXPECT_EQ(st.command, nic::SubmitCommand::GradCam);
    EXPECT_EQ(st.items[0].state, nic::ItemState::Done);
    EXPECT_EQ(st.items[0].task, "41_0");
    EXPECT_EQ(st.items[0].jobState, "FAILED"); // task 0 had c too, which failed
    EXPECT_EQ(st.items[1].state, nic::ItemState::Partial);
    EXPECT_EQ(st.items[1].task, "41_1");
    EXPECT_EQ(st.items[1].jobState, "RUNNING");
    EXPECT_TRUE(st.items[1].live());
    EXPECT_EQ(st.items[2].state, nic::ItemState::Failed);
    EXPECT_EQ(st.items[2].error, "/g/c.h5: not a compressed slide");
    EXPECT_EQ(st.items[3].state, nic::ItemState::Missing);
    EXPECT_FALSE(st.complete());
    EXPECT_EQ(st.count(nic::ItemState::Done), 1);
    // Slurm no longer lists task 1 and it wrote no exit status: it ended abnormally.
    slurm.states.clear();
    EXPECT_EQ(folder.status(slurm).items[1].jobState, "ENDED");
    const auto j = nlohmann::json::parse(folder.status(slurm).toJson());
    EXPECT_EQ(j["command"], "gradcam");
    EXPECT_EQ(j["counts"]["failed"], 1);
    EXPECT_EQ(j["items"][2]["error"], "/g/c.h5: not a compressed slide");
}

TEST(SubmitFolder, TrainRoundsAndMerge) {
    TempDir tmp;
    const fs::path run = tmp / "run";
    nic::SubmitFolder folder(run);
    const std::vector<nic::SubmitItem> rounds = {{"0", "0"}, {"1", "1"}};
    folder.createBatch(rounds);
    folder.recordSubmission(nic::SubmitCommand::Train, {}, rounds, {{"50", 1, 2, "tasks"}, {"51", 1, 0, "merge"}});
    touch(run / "fold0" / "round.json");
    touch(run / "fold0" / "model.pt");
    touch(run / "fold1" / "checkpoint.pt");
    nic::SlurmQuery slurm;
    slurm.states = {{"50_1", "RUNNING"}, {"51", "PENDING"}};
    auto st = folder.status(slurm);
    EXPECT_EQ(st.items[0].state, nic::ItemState::Done);
    EXPECT_EQ(st.items[1].state, nic::ItemState::Partial);
    ASSERT_TRUE(st.merge);
    EXPECT_EQ(st.merge->state, nic::ItemState::Missing);
    EXPECT_EQ(st.merge->task, "51");
    EXPECT_EQ(st.merge->jobState, "PENDING");
    touch(run / "fold1" / "round.json");
    touch(run / "fold1" / "model.pt");
    EXPECT_FALSE(folder.status(slurm).complete()) << "rounds done, merge not yet";
    touch(run / "metrics.json");
    touch(run / "predictions.csv");
    EXPECT_TRUE(folder.status(slurm).complete());
}

TEST(SubmitCli, StatusOfAFolderWithoutSubmission) {
    TempDir tmp;
    std::string o, e;
    EXPECT_EQ(runCommand(nic::test::nicCommand("status " + nic::test::shellQuoted(tmp.path())), &o, &e), 1);
    EXPECT_EQ(e, "nic: error: " + tmp.path().string() + ": no submission recorded here (no " +
                     (tmp.path() / ".nic-submit/run.json").string() + ")\n");
    EXPECT_EQ(runCommand(nic::test::nicCommand("status " + nic::test::shellQuoted(tmp / "nope")), &o, &e), 1);
    EXPECT_EQ(e, "nic: error: " + (tmp / "nope").string() + ": no such folder\n");
}

// --dry-run: the script a cluster would get, with the compress options passed through; nothing written.
TEST(SubmitCli, DryRunPrintsTheArrayScript) {
    TempDir tmp;
    touch(tmp / "s1.tiff");
    touch(tmp / "s2.tiff");
    touch(tmp / "s3.tiff");
    const fs::path out = tmp / "out";
    std::string o, e;
    ASSERT_EQ(runCommand(nic::test::nicCommand("submit compress --dry-run --array-size 2 --parallel 1 --partition cpu --time 2:00:00 "
                                "--cpus 4 --mem 6G --account lab --sbatch-arg=--qos=long " +
                                nic::test::shellQuoted(tmp / "s1.tiff") + " " + nic::test::shellQuoted(tmp / "s2.tiff") + " " + nic::test::shellQuoted(tmp / "s3.tiff") +
                                " -e mean-rgb -o " + nic::test::shellQuoted(out) + " --augment 8 --no-resume --band-rows 4"),
                         &o, &e),
              0)
        << e;
    EXPECT_EQ(o.rfind("#!/bin/bash\n#SBATCH --job-name=nic-compress\n#SBATCH --array=0-1%1\n#SBATCH --output=" +
                          (out / ".nic-submit/batch-1/logs/task-%a.out").string() +
                          "\n#SBATCH --partition=cpu\n#SBATCH --time=2:00:00\n#SBATCH --cpus-per-task=4\n"
                          "#SBATCH --mem=6G\n#SBATCH --account=lab\n#SBATCH --qos=long\n",
                      0),
              0U)
        << o;
    EXPECT_NE(o.find("\"$NIC\" compress \"$input\" --quiet --out=\"$OUT\" --encoder=mean-rgb --augment=8 "
                     "--band-rows=4 --resume=false 2> \"$err\""),
              std::string::npos)
        << o;
    EXPECT_NE(o.find("TASKS=2\n"), std::string::npos);
    EXPECT_NE(o.find("NIC=" + nicExecutable().string() + "\n"), std::string::npos) << o;
    EXPECT_FALSE(fs::exists(out)) << "--dry-run wrote " << out;
}

TEST(SubmitCli, CompressOptionsAreCheckedOnSubmit) {
    TempDir tmp;
    touch(tmp / "s1.tiff");
    std::string o, e;
    EXPECT_EQ(runCommand(nic::test::nicCommand("submit compress --dry-run " + nic::test::shellQuoted(tmp / "s1.tiff") + " -e mean-rgb -o " +
                                nic::test::shellQuoted(tmp / "out") + " --augment 3"),
                         &o, &e),
              2);
    EXPECT_EQ(e.rfind("nic: usage error: nic compress: --augment: ", 0), 0U) << e;
    EXPECT_EQ(runCommand(nic::test::nicCommand("submit compress --dry-run " + nic::test::shellQuoted(tmp / "s1.tiff") + " -e mean-rgb -o " +
                                nic::test::shellQuoted(tmp / "out") + " --shard 0/2"),
                         &o, &e),
              2);
    EXPECT_EQ(e, "nic: usage error: --shard: nic submit shards the slides over the array tasks itself\n");
}

// No sbatch on PATH: a clear error before anything is written.
TEST(SubmitCli, MissingSbatchIsAClearErrorAndWritesNothing) {
    TempDir tmp;
    touch(tmp / "s1.tiff");
    fs::create_directories(tmp / "emptybin");
    std::string o, e;
    EXPECT_EQ(runCommand("PATH=" + nic::test::shellQuoted(tmp / "emptybin") + " " +
                             nic::test::nicCommand("submit compress " + nic::test::shellQuoted(tmp / "s1.tiff") + " -e mean-rgb -o " + nic::test::shellQuoted(tmp / "out")),
                         &o, &e),
              1);
    EXPECT_EQ(e, "nic: error: sbatch not found on PATH: submitting needs the Slurm client commands on this machine "
                 "(--dry-run prints the script instead)\n");
    EXPECT_FALSE(fs::exists(tmp / "out"));
}

// An output folder that cannot be one: the cause, no sbatch call, nothing written.
TEST(SubmitCli, UnusableOutputFolderIsAClearError) {
    TempDir tmp;
    touch(tmp / "s1.tiff");
    // A stand-in sbatch that would leave a mark if it were called.
    touch(tmp / "bin" / "sbatch", "#!/bin/sh\ntouch \"$(dirname \"$0\")/called\"\necho 1\n");
    fs::permissions(tmp / "bin" / "sbatch", fs::perms::owner_all);
    touch(tmp / "afile", "x");
    const std::string path = "PATH=" + nic::test::shellQuoted(tmp / "bin") + ":\"$PATH\" ";
    std::string o, e;
    EXPECT_EQ(runCommand(path + nic::test::nicCommand("submit compress " + nic::test::shellQuoted(tmp / "s1.tiff") + " -e mean-rgb -o " + nic::test::shellQuoted(tmp / "afile")),
                         &o, &e),
              1);
    EXPECT_EQ(e, "nic: error: " + (tmp / "afile").string() + ": cannot use as output folder: it is a file\n");
    EXPECT_EQ(runCommand(path + nic::test::nicCommand("submit compress " + nic::test::shellQuoted(tmp / "s1.tiff") + " -e mean-rgb -o " +
                                       nic::test::shellQuoted(tmp / "afile" / "out")),
                         &o, &e),
              1);
    EXPECT_EQ(e, "nic: error: " + (tmp / "afile" / "out").string() + ": cannot create output folder: Not a directory\n");
    EXPECT_FALSE(fs::exists(tmp / "bin" / "called"));
    EXPECT_EQ(nic::test::readFile(tmp / "afile"), "x");
}
