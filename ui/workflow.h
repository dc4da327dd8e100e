#pragma once
// The NIC workflow inside nic-studio's main window: a Jobs dock (JobsPanel over a JobRunner owned by the
// window), a Cohort dock (double-click opens the slide), a Training dock with live curves, and an
// Analysis menu (Compress…, Train encoder…, Train slide model…, Grad-CAM…, Compare heatmaps…). Each
// dialog's accepted options become a Job whose body calls the core stage with the job's JobContext, as
// the `nic` CLI does; a finished job's result opens in the viewer (compressed grid → latent view over its
// slide, heatmap → overlay on its slide, slide-model run folder → its curves and ROC / scatter plots,
// encoder → its training curves).
//
// LibTorch: the `ui` library never includes torch headers. The stages that need it (encoder files,
// encoder and slide-model training, Grad-CAM) are bodies in a table, NeuralJobs, that the `ui_nn`
// library registers when the build has LibTorch. Without it, their menu entries stay visible but
// disabled, with the reason as tooltip; compression with the built-in mean-rgb encoder always works.
//
// Closing the window while jobs are queued or running asks first; on "Yes" every job is cancelled and
// the worker thread is waited for before the window closes.
#include "core/cluster/submitfolder.h"
#include "ui/dialogs.h"
#include "ui/job.h"

#include <QHash>
#include <QObject>
#include <QPointer>
#include <QString>

#include <functional>
#include <limits>
#include <memory>
#include <string>

class QAction;
class QDockWidget;
class QMenu;
class QTabWidget;

namespace nic {

class ClusterJobs;
class CohortPanel;
class CompareView;
class JobRunner;
class JobsPanel;
class MainWindow;
class PatchEncoder;
class TrainingCurvesPlot;
struct EpochPoint;

/// Receives one training epoch; called on the job's worker thread (the workflow posts it to the plot).
using EpochSink = std::function<void(const EpochPoint& point)>;

/// Job bodies that need LibTorch; every entry may be empty. Bodies run on the worker thread, report
/// through the JobContext, throw to fail (the message is shown as the cause).
struct NeuralJobs {
    /// Loads an encoder file for compression (the built-in mean-rgb needs none).
    std::function<std::unique_ptr<PatchEncoder>(const std::string& path)> loadEncoder;
    std::function<void(const TrainEncoderDialog::Options&, JobContext&, const EpochSink&)> trainEncoder;
    std::function<void(const TrainSlideModelDialog::Options&, JobContext&, const EpochSink&)> trainSlideModel;
    std::function<void(const GradCamDialog::Options&, JobContext&)> gradCam;
};

/// Installs the LibTorch job bodies (ui_nn calls this once, at start-up). Not thread-safe: call before
/// any workflow is installed.
void registerNeuralJobs(NeuralJobs jobs);
/// The registered table (empty entries when nothing was registered).
const NeuralJobs& neuralJobs();
/// Why neural stages are unavailable in this build ("" when ui_nn registered them).
QString neuralJobsUnavailableReason();

/// `<out>/<grid stem>_heatmap.h5`: the heatmap a Grad-CAM job writes for a compressed slide.
QString heatmapPathFor(const QString& gridPath, const QString& outputDir);

class Workflow : public QObject {
    Q_OBJECT
public:
    /// Adds the docks, the Analysis menu and the close guard to `window`; the workflow, its JobRunner
    /// and its panels are children of the window and live as long as it does.
    static Workflow* install(MainWindow* window);
    /// The workflow installed on `window`, or nullptr.
    static Workflow* of(const MainWindow* window);

    MainWindow* window() const { return window_; }
    JobRunner* runner() const { return runner_; }
    /// Jobs submitted to Slurm from the dialogs (their Options' runOn.cluster).
    ClusterJobs* clusterJobs() const { return cluster_; }
    JobsPanel* jobsPanel() const { return jobsPanel_; }
    CohortPanel* cohortPanel() const { return cohortPanel_; }
    QDockWidget* jobsDock() const { return jobsDock_; }
    QDockWidget* cohortDock() const { return cohortDock_; }
    QDockWidget* trainingDock() const { return trainingDock_; }
    QMenu* analysisMenu() const { return menu_; }
    QAction* compressAction() const { return compress_; }
    QAction* trainEncoderAction() const { return trainEncoder_; }
    QAction* trainSlideModelAction() const { return trainSlideModel_; }
    QAction* gradCamAction() const { return gradCam_; }
    QAction* compareAction() const { return compare_; }

    // Job creation (the dialogs end here; tests call them directly). The options are taken as the
    // dialogs validated them; what goes wrong while running (a slide gone missing, an unreadable file)
    // fails the job with its cause. A stage that needs LibTorch in a build without it returns 0 and
    // sets `error`.
    JobId startCompress(const CompressDialog::Options& options, QString* error = nullptr);
    JobId startTrainEncoder(const TrainEncoderDialog::Options& options, QString* error = nullptr);
    JobId startTrainSlideModel(const TrainSlideModelDialog::Options& options, QString* error = nullptr);
    JobId startGradCam(const GradCamDialog::Options& options, QString* error = nullptr);

    /// The live curves of a training job (nullptr for other jobs).
    TrainingCurvesPlot* curvesFor(JobId id) const;

    /// Opens a compare view (a window of its own) of `slidePath` with 2–6 heatmap files; nullptr and
    /// `error` for a bad count.
    CompareView* openCompare(const QString& slidePath, const QStringList& heatmapFiles,
                             const QString& annotationXml = {}, QString* error = nullptr);
    /// The compare views opened so far that are still open.
    QList<CompareView*> compareViews() const;

    /// Opens a finished job's result (a path from its Job::resultPaths) in the viewer; false and a
    /// status-bar message when it cannot be shown.
    bool openResult(const QString& path);

public Q_SLOTS:
    void showCompressDialog();
    void showTrainEncoderDialog();
    void showTrainSlideModelDialog();
    void showGradCamDialog();
    void showCompareDialog();

Q_SIGNALS:
    /// A result was opened (the slide tab or plot window is up).
    void resultOpened(const QString& path);

protected:
    bool eventFilter(QObject* watched, QEvent* event) override;

private:
    explicit Workflow(MainWindow* window);
    enum class ResultKind { CompressedGrid, Heatmap, SlideModelRun, Encoder };
    struct ResultInfo {
        ResultKind kind;
        QString slide; ///< the slide a grid or heatmap belongs to ("" = look it up)
        JobId job = 0; ///< the job that writes it (training curves)
    };
    TrainingCurvesPlot* addCurves(JobId id, const QString& title, const QString& metricName);
    EpochSink epochSinkFor(TrainingCurvesPlot* plot);
    QString findSlide(const QString& fileName, const QStringList& nearDirs) const;
    /// The dialogs' "Run on: Slurm cluster": `nic submit <command> arguments…`, followed in the Jobs dock.
    JobId submitToCluster(SubmitCommand command, const QStringList& arguments, const QString& outputDir, const QString& name,
                          const QStringList& resultPaths, const RunOn& runOn, QString* error);
    bool openSlideWithGrid(const QString& h5, const QString& slide);
    bool openSlideWithHeatmap(const QString& h5, const QString& slide);
    bool openRunPlots(const QString& runDir);
    void status(const QString& message);
    bool requireNeural(QString* error) const;

    MainWindow* window_;
    JobRunner* runner_;
    ClusterJobs* cluster_;
    JobsPanel* jobsPanel_;
    CohortPanel* cohortPanel_;
    QDockWidget* jobsDock_;
    QDockWidget* cohortDock_;
    QDockWidget* trainingDock_;
    QTabWidget* curvesTabs_;
    QMenu* menu_;
    QAction* compress_;
    QAction* trainEncoder_;
    QAction* trainSlideModel_;
    QAction* gradCam_;
    QAction* compare_;
    QHash<QString, ResultInfo> results_;
    QHash<JobId, QPointer<TrainingCurvesPlot>> curves_;
    QList<QPointer<CompareView>> compareViews_;
};

} // namespace nic
