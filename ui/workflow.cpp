#include "ui/workflow.h"

#include "core/compression/compressor.h"
#include "core/encoders/encoder.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "core/slidelearning/metrics.h"
#include "core/slidelearning/runfolder.h"
#include "ui/cohortpanel.h"
#include "ui/compareview.h"
#include "ui/clusterjobs.h"
#include "ui/jobrunner.h"
#include "ui/jobspanel.h"
#include "ui/mainwindow.h"
#include "ui/plots.h"
#include "ui/slidetab.h"

#include <QCloseEvent>
#include <QDialog>
#include <QDialogButtonBox>
#include <QDir>
#include <QDockWidget>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QListWidget>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QPushButton>
#include <QStatusBar>
#include <QTabWidget>
#include <QTextStream>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <vector>

namespace nic {

namespace {

NeuralJobs& registry() {
    static NeuralJobs jobs;
    return jobs;
}

std::vector<std::filesystem::path> toPaths(const QStringList& list) {
    std::vector<std::filesystem::path> out;
    for (const auto& s : list)
        out.emplace_back(s.toStdString());
    return out;
}

/// Choose a slide, 2–6 heatmap files and optionally an annotation XML.
class CompareDialog : public QDialog {
public:
    CompareDialog(const QString& slide, QWidget* parent) : QDialog(parent) {
        setWindowTitle(tr("Compare heatmaps"));
        auto* form = new QFormLayout;
        slide_ = new PathEdit(PathEdit::Mode::OpenFile,
                              tr("Slides (*.svs *.tif *.tiff *.ndpi *.vms *.vmu *.scn *.mrxs *.svslide *.bif);;All files (*)"),
                              this);
        slide_->setPath(slide);
        form->addRow(tr("Slide"), slide_);
        list_ = new QListWidget(this);
        list_->setSelectionMode(QAbstractItemView::ExtendedSelection);
        auto* add = new QPushButton(tr("Add…"), this);
        auto* remove = new QPushButton(tr("Remove"), this);
        auto* buttons = new QVBoxLayout;
        buttons->addWidget(add);
        buttons->addWidget(remove);
        buttons->addStretch(1);
        auto* row = new QHBoxLayout;
        row->addWidget(list_, 1);
        row->addLayout(buttons);
        form->addRow(tr("Heatmaps (2–6)"), row);
        xml_ = new PathEdit(PathEdit::Mode::OpenFile, tr("ASAP XML (*.xml)"), this);
        form->addRow(tr("Annotations (optional)"), xml_);
        error_ = new QLabel(this);
        error_->setStyleSheet(QStringLiteral("color: #b00020"));
        error_->setWordWrap(true);
        box_ = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
        auto* lay = new QVBoxLayout(this);
        lay->addLayout(form);
        lay->addWidget(error_);
        lay->addWidget(box_);
        connect(box_, &QDialogButtonBox::accepted, this, &QDialog::accept);
        connect(box_, &QDialogButtonBox::rejected, this, &QDialog::reject);
        connect(add, &QPushButton::clicked, this, [this] {
            const QStringList files = QFileDialog::getOpenFileNames(
                this, tr("Heatmaps"), QFileInfo(slide_->path()).path(),
                tr("Heatmaps (*_heatmap.h5 *.h5 *_likelihood_map.tif *.tif *.tiff);;All files (*)"));
            list_->addItems(files);
            revalidate();
        });
        connect(remove, &QPushButton::clicked, this, [this] {
            qDeleteAll(list_->selectedItems());
            revalidate();
        });
        connect(slide_, &PathEdit::pathChanged, this, [this] { revalidate(); });
        connect(xml_, &PathEdit::pathChanged, this, [this] { revalidate(); });
        revalidate();
    }
    QString slide() const { return slide_->path(); }
    QString xml() const { return xml_->path(); }
    QStringList heatmaps() const {
        QStringList out;
        for (int i = 0; i < list_->count(); ++i)
            out << list_->item(i)->text();
        return out;
    }

private:
    void revalidate() {
        QString e;
        const QStringList h = heatmaps();
        if (!QFileInfo(slide()).isFile())
            e = slide().isEmpty() ? tr("Choose a slide.") : tr("Slide not found: %1").arg(slide());
        else if (h.size() < CompareView::kMinViews || h.size() > CompareView::kMaxViews)
            e = tr("Choose %1 to %2 heatmaps (now %3).").arg(CompareView::kMinViews).arg(CompareView::kMaxViews).arg(h.size());
        else if (!xml().isEmpty() && !QFileInfo(xml()).isFile())
            e = tr("Annotation file not found: %1").arg(xml());
        for (const auto& f : h)
            if (e.isEmpty() && !QFileInfo(f).isFile())
                e = tr("Heatmap not found: %1").arg(f);
        error_->setText(e);
        box_->button(QDialogButtonBox::Ok)->setEnabled(e.isEmpty());
    }
    PathEdit* slide_;
    QListWidget* list_;
    PathEdit* xml_;
    QLabel* error_;
    QDialogButtonBox* box_;
};

} // namespace

void registerNeuralJobs(NeuralJobs jobs) { registry() = std::move(jobs); }
const NeuralJobs& neuralJobs() { return registry(); }

QString neuralJobsUnavailableReason() {
    const NeuralJobs& j = registry();
    if (j.trainEncoder && j.trainSlideModel && j.gradCam)
        return {};
    return QObject::tr("This build of nic-studio has no LibTorch (built without NIC_WITH_TORCH), so encoders, "
                       "slide models and Grad-CAM are not available; compression with mean-rgb is.");
}

QString heatmapPathFor(const QString& gridPath, const QString& outputDir) {
    return QDir(outputDir).filePath(QFileInfo(gridPath).completeBaseName() + QStringLiteral("_heatmap.h5"));
}

// ------------------------------------------------------------------------------------------ install

Workflow* Workflow::install(MainWindow* window) {
    if (auto* existing = of(window))
        return existing;
    return new Workflow(window);
}

Workflow* Workflow::of(const MainWindow* window) {
    return window ? window->findChild<Workflow*>(QString(), Qt::FindDirectChildrenOnly) : nullptr;
}

Workflow::Workflow(MainWindow* window) : QObject(window), window_(window) {
    // The runner is this object's child, and this object is created before the docks, so on window
    // destruction the runner is shut down (worker waited for) while the panels still exist.
    runner_ = new JobRunner(this);
    cluster_ = new ClusterJobs(runner_, this);

    jobsPanel_ = new JobsPanel(*runner_);
    jobsDock_ = new QDockWidget(tr("Jobs"), window);
    jobsDock_->setObjectName(QStringLiteral("jobsDock"));
    jobsDock_->setWidget(jobsPanel_);
    window->addDockWidget(Qt::BottomDockWidgetArea, jobsDock_);

    curvesTabs_ = new QTabWidget;
    curvesTabs_->setTabsClosable(true);
    connect(curvesTabs_, &QTabWidget::tabCloseRequested, this, [this](int i) {
        QWidget* w = curvesTabs_->widget(i);
        curvesTabs_->removeTab(i);
        w->deleteLater();
    });
    trainingDock_ = new QDockWidget(tr("Training"), window);
    trainingDock_->setObjectName(QStringLiteral("trainingDock"));
    trainingDock_->setWidget(curvesTabs_);
    window->addDockWidget(Qt::BottomDockWidgetArea, trainingDock_);
    window->tabifyDockWidget(jobsDock_, trainingDock_);
    jobsDock_->raise();

    cohortPanel_ = new CohortPanel;
    cohortDock_ = new QDockWidget(tr("Cohort"), window);
    cohortDock_->setObjectName(QStringLiteral("cohortDock"));
    cohortDock_->setWidget(cohortPanel_);
    window->addDockWidget(Qt::LeftDockWidgetArea, cohortDock_);

    connect(cohortPanel_, &CohortPanel::openSlide, window, [window](const QString& p) { window->openSlide(p); });
    connect(jobsPanel_, &JobsPanel::openResultRequested, this, [this](const QString& p) { openResult(p); });
    connect(runner_, &JobRunner::jobFinished, this, [this](JobId id, JobState state, const QString& error) {
        const JobInfo info = runner_->info(id);
        if (state == JobState::Failed)
            status(tr("%1 failed: %2").arg(info.name, error));
        else if (state == JobState::Succeeded)
            status(tr("%1 finished").arg(info.name));
        cohortPanel_->model()->refreshCompression();
    });

    menu_ = window->menuBar()->addMenu(tr("&Analysis"));
    compress_ = menu_->addAction(tr("&Compress slides…"), this, &Workflow::showCompressDialog);
    trainEncoder_ = menu_->addAction(tr("Train &encoder…"), this, &Workflow::showTrainEncoderDialog);
    trainSlideModel_ = menu_->addAction(tr("Train &slide model…"), this, &Workflow::showTrainSlideModelDialog);
    gradCam_ = menu_->addAction(tr("&Grad-CAM…"), this, &Workflow::showGradCamDialog);
    menu_->addSeparator();
    compare_ = menu_->addAction(tr("Compare &heatmaps…"), this, &Workflow::showCompareDialog);
    menu_->addSeparator();
    menu_->addAction(jobsDock_->toggleViewAction());
    menu_->addAction(trainingDock_->toggleViewAction());
    menu_->addAction(cohortDock_->toggleViewAction());
    compress_->setStatusTip(tr("Slides → latent grids (HDF5), like nic compress"));
    const QString why = neuralJobsUnavailableReason();
    for (QAction* a : {trainEncoder_, trainSlideModel_, gradCam_}) {
        a->setEnabled(why.isEmpty());
        a->setToolTip(why);
        a->setStatusTip(why);
    }
    menu_->setToolTipsVisible(true);

    window->installEventFilter(this);
}

bool Workflow::eventFilter(QObject* watched, QEvent* event) {
    if (watched == window_ && event->type() == QEvent::Close) {
        if (!confirmCloseWithRunningJobs(window_, *runner_)) {
            event->ignore();
            return true; // the window stays open
        }
        for (auto& v : compareViews_)
            if (v)
                v->close();
    }
    return QObject::eventFilter(watched, event);
}

void Workflow::status(const QString& message) { window_->statusBar()->showMessage(message, 15000); }

bool Workflow::requireNeural(QString* error) const {
    const QString why = neuralJobsUnavailableReason();
    if (why.isEmpty())
        return true;
    if (error)
        *error = why;
    return false;
}

// ------------------------------------------------------------------------------------------- jobs

JobId Workflow::startCompress(const CompressDialog::Options& o, QString* error) {
    const bool builtin = CompressDialog::builtinEncoders().contains(o.encoder);
    auto loadNeural = registry().loadEncoder;
    if (!builtin && !loadNeural) {
        if (error)
            *error = tr("Encoder %1: this build has no LibTorch, so only the built-in mean-rgb encoder is available")
                         .arg(o.encoder);
        return 0;
    }
    Job job;
    job.name = o.slides.size() == 1 ? tr("Compress %1").arg(QFileInfo(o.slides.front()).fileName())
                                    : tr("Compress %1 slides").arg(o.slides.size());
    for (const auto& s : o.slides) {
        const QString out = QString::fromStdString(compressedPathFor(s.toStdString(), o.outputDir.toStdString()).string());
        job.resultPaths << out;
        results_.insert(out, {ResultKind::CompressedGrid, s, 0});
    }
    if (o.runOn.cluster) {
        QStringList args = o.slides;
        args << QStringLiteral("--encoder=") + o.encoder << QStringLiteral("--out=") + o.outputDir
             << QStringLiteral("--stride=%1").arg(o.stride) << QStringLiteral("--augment=%1").arg(o.augment);
        if (builtin)
            args << QStringLiteral("--patch=%1").arg(o.patchSize);
        if (o.targetMpp > 0.0)
            args << QStringLiteral("--target-mpp=%1").arg(o.targetMpp, 0, 'g', 10);
        return submitToCluster(SubmitCommand::Compress, args, o.outputDir, job.name, job.resultPaths, o.runOn, error);
    }
    job.body = [slides = toPaths(o.slides), encoderName = o.encoder.toStdString(), builtin, loadNeural,
                patch = o.patchSize, stride = o.stride, mpp = o.targetMpp, augment = o.augment,
                outDir = std::filesystem::path(o.outputDir.toStdString())](JobContext& ctx) {
        std::unique_ptr<PatchEncoder> encoder;
        if (builtin)
            encoder = std::make_unique<MeanRgbEncoder>(patch); // "mean-rgb"; a file encoder has its own P
        else
            encoder = loadNeural(encoderName);
        CompressOptions c;
        c.stride = stride;
        c.targetMpp = mpp;
        c.augment = augment;
        const EncoderInfo& info = encoder->info();
        ctx.log("compressing " + std::to_string(slides.size()) + " slide(s) with " + info.name + " (P=" +
                std::to_string(info.patchSize) + ", C=" + std::to_string(info.codeSize) + ") into " + outDir.string());
        CompressEvents events;
        events.finished = [&ctx](std::size_t, std::size_t, const BatchItemResult& item) {
            if (!item.result) {
                ctx.log("error: " + item.error);
                return;
            }
            const CompressResult& r = *item.result;
            ctx.log(item.slide.string() + " -> " + r.output.string() + ": " + toString(r.status) + ", " +
                    std::to_string(r.rows) + " x " + std::to_string(r.cols) + " grid, " +
                    std::to_string(r.tissueCells) + " tissue cells");
        };
        const auto items = compressSlides(slides, *encoder, outDir, c, Shard{}, ctx, events);
        if (items.size() == 1 && !items.front().error.empty())
            throw Error(items.front().error);
        if (const std::string failed = batchFailureMessage(items); !failed.empty())
            throw Error(failed);
    };
    return runner_->enqueue(std::move(job));
}

TrainingCurvesPlot* Workflow::addCurves(JobId id, const QString& title, const QString& metricName) {
    auto* plot = new TrainingCurvesPlot;
    plot->setTitle(title);
    plot->setMetricName(metricName);
    curvesTabs_->addTab(plot, title);
    curvesTabs_->setCurrentWidget(plot);
    trainingDock_->show();
    trainingDock_->raise();
    curves_.insert(id, plot);
    return plot;
}

EpochSink Workflow::epochSinkFor(TrainingCurvesPlot* plot) {
    QPointer<TrainingCurvesPlot> guarded(plot);
    return [guarded](const EpochPoint& p) {
        // Worker thread: post to the plot (the context object); dropped when the plot is gone.
        QMetaObject::invokeMethod(guarded.data(), [guarded, p] {
            if (guarded)
                guarded->appendPoint(p);
        }, Qt::QueuedConnection);
    };
}

TrainingCurvesPlot* Workflow::curvesFor(JobId id) const { return curves_.value(id).data(); }

JobId Workflow::startTrainEncoder(const TrainEncoderDialog::Options& o, QString* error) {
    if (!requireNeural(error))
        return 0;
    // The plot exists before the job so that the body's sink can reach it from its first epoch.
    TrainingCurvesPlot* plot = addCurves(0, tr("Encoder %1").arg(o.method),
                                         o.method == QLatin1String("vae") ? tr("validation loss")
                                                                           : tr("validation accuracy"));
    Job job;
    job.name = tr("Train %1 encoder → %2").arg(o.method, QFileInfo(o.output).fileName());
    job.resultPaths << o.output;
    job.body = [body = registry().trainEncoder, o, sink = epochSinkFor(plot)](JobContext& ctx) { body(o, ctx, sink); };
    const JobId id = runner_->enqueue(std::move(job));
    curves_.remove(0);
    curves_.insert(id, plot);
    curvesTabs_->setTabText(curvesTabs_->indexOf(plot), tr("Encoder %1 (job %2)").arg(o.method).arg(id));
    results_.insert(o.output, {ResultKind::Encoder, {}, id});
    return id;
}

JobId Workflow::startTrainSlideModel(const TrainSlideModelDialog::Options& o, QString* error) {
    if (!requireNeural(error))
        return 0;
    if (o.runOn.cluster) {
        const QStringList args{QStringLiteral("--cohort=") + o.cohort, QStringLiteral("--grids=") + o.gridsDir,
                               QStringLiteral("--task=") + (o.task == QLatin1String("regression") ? QStringLiteral("regress") : QStringLiteral("classify")),
                               QStringLiteral("--folds=%1").arg(o.folds), QStringLiteral("--crop=%1").arg(o.cropSize),
                               QStringLiteral("--test-crops=%1").arg(o.testCrops), QStringLiteral("--epochs=%1").arg(o.epochs),
                               QStringLiteral("--head=") + o.head, QStringLiteral("--out=") + o.outputDir};
        const JobId id = submitToCluster(SubmitCommand::Train, args, o.outputDir,
                                         tr("Train slide model (%1, %2 folds) → %3").arg(o.task).arg(o.folds).arg(QDir(o.outputDir).dirName()),
                                         {o.outputDir}, o.runOn, error);
        if (id)
            results_.insert(o.outputDir, {ResultKind::SlideModelRun, {}, id});
        return id;
    }
    TrainingCurvesPlot* plot =
        addCurves(0, tr("Slide model %1").arg(QDir(o.outputDir).dirName()),
                  o.task == QLatin1String("regression") ? tr("validation Spearman") : tr("validation AUC"));
    Job job;
    job.name = tr("Train slide model (%1, %2 folds) → %3").arg(o.task).arg(o.folds).arg(QDir(o.outputDir).dirName());
    job.resultPaths << o.outputDir;
    job.body = [body = registry().trainSlideModel, o, sink = epochSinkFor(plot)](JobContext& ctx) { body(o, ctx, sink); };
    const JobId id = runner_->enqueue(std::move(job));
    curves_.remove(0);
    curves_.insert(id, plot);
    curvesTabs_->setTabText(curvesTabs_->indexOf(plot), tr("Slide model %1 (job %2)").arg(QDir(o.outputDir).dirName()).arg(id));
    results_.insert(o.outputDir, {ResultKind::SlideModelRun, {}, id});
    return id;
}

JobId Workflow::startGradCam(const GradCamDialog::Options& o, QString* error) {
    if (!requireNeural(error))
        return 0;
    Job job;
    job.name = o.slides.size() == 1 ? tr("Grad-CAM %1").arg(QFileInfo(o.slides.front()).completeBaseName())
                                    : tr("Grad-CAM of %1 slides").arg(o.slides.size());
    for (const auto& s : o.slides) {
        const QString out = heatmapPathFor(s, o.outputDir);
        job.resultPaths << out;
        results_.insert(out, {ResultKind::Heatmap, {}, 0});
    }
    if (o.runOn.cluster) {
        QStringList args = o.slides;
        args << QStringLiteral("--model=") + o.model << QStringLiteral("--layer=%1").arg(o.layer)
             << QStringLiteral("--out=") + o.outputDir;
        if (!o.png)
            args << QStringLiteral("--no-png");
        if (!o.tiff)
            args << QStringLiteral("--no-tiff");
        return submitToCluster(SubmitCommand::GradCam, args, o.outputDir, job.name, job.resultPaths, o.runOn, error);
    }
    auto body = registry().gradCam;
    job.body = [body, o](JobContext& ctx) { body(o, ctx); };
    return runner_->enqueue(std::move(job));
}

JobId Workflow::submitToCluster(SubmitCommand command, const QStringList& arguments, const QString& outputDir,
                                const QString& name, const QStringList& resultPaths, const RunOn& runOn, QString* error) {
    ClusterJobs::Submission s;
    s.command = command;
    s.arguments = arguments;
    s.outputDir = outputDir;
    s.name = name;
    s.resultPaths = resultPaths;
    s.slurm = runOn.slurm;
    const JobId id = cluster_->submit(s, error);
    if (id) {
        jobsDock_->show();
        jobsDock_->raise();
        jobsPanel_->selectJob(id);
    }
    return id;
}

// ---------------------------------------------------------------------------------------- results

QString Workflow::findSlide(const QString& fileName, const QStringList& nearDirs) const {
    if (fileName.isEmpty())
        return {};
    for (const auto& row : cohortPanel_->model()->rows())
        if (QFileInfo(row.slide).fileName() == fileName && QFileInfo(row.slide).isFile())
            return row.slide;
    for (const auto& d : nearDirs) {
        for (const QString& dir : {d, QFileInfo(d).path()}) {
            const QString candidate = QDir(dir).filePath(fileName);
            if (QFileInfo(candidate).isFile())
                return candidate;
        }
    }
    return {};
}

bool Workflow::openSlideWithGrid(const QString& h5, const QString& slide) {
    QString s = slide;
    if (!QFileInfo(s).isFile()) {
        try {
            const auto meta = readLatentGridMeta(h5.toStdString());
            s = findSlide(QString::fromStdString(meta.slideFile), {QFileInfo(h5).path()});
        } catch (const std::exception& e) {
            status(QString::fromUtf8(e.what()));
            return false;
        }
    }
    if (s.isEmpty()) {
        status(tr("%1: its slide was not found (open the slide, then File → Load latent grid…)").arg(h5));
        return false;
    }
    SlideTab* tab = window_->openSlide(s);
    tab->loadLatent(h5);
    return true;
}

bool Workflow::openSlideWithHeatmap(const QString& h5, const QString& slide) {
    QString s = slide;
    CompareHeatmap heat;
    try {
        heat = loadCompareHeatmap(h5, 0.0);
        if (!QFileInfo(s).isFile()) {
            const HeatmapData d = readHeatmapFile(h5.toStdString());
            s = findSlide(QString::fromStdString(d.slideFile),
                          {QFileInfo(QString::fromStdString(d.gridFile)).path(), QFileInfo(h5).path()});
        }
    } catch (const std::exception& e) {
        status(QString::fromUtf8(e.what()));
        return false;
    }
    if (s.isEmpty()) {
        status(tr("%1: its slide was not found next to the heatmap, its grid or in the cohort").arg(h5));
        return false;
    }
    SlideTab* tab = window_->openSlide(s);
    tab->setHeatmap(heat.grid);
    return true;
}

bool Workflow::openRunPlots(const QString& runDir) {
    auto* win = new QTabWidget;
    win->setAttribute(Qt::WA_DeleteOnClose);
    win->setAttribute(Qt::WA_QuitOnClose, false);
    win->setWindowTitle(tr("Slide model: %1").arg(QDir(runDir).dirName()));
    try {
        const std::filesystem::path run = runDir.toStdString();
        auto* curves = new TrainingCurvesPlot;
        curves->setTitle(tr("Training curves (rounds one after the other)"));
        int epoch = 0;
        for (const RunCurvePoint& c : readRunCurves(run))
            curves->appendPoint(EpochPoint::fromRun(c, ++epoch));
        const bool regression = readRunTask(run) == "regress";
        curves->setMetricName(regression ? tr("validation Spearman") : tr("validation AUC"));
        const auto predictions = readRunPredictions(run);
        if (regression) {
            auto* scatter = new ScatterPlot;
            QVector<double> truth, predicted;
            QStringList ids;
            for (const auto& row : predictions) {
                truth << row.label;
                predicted << row.prediction;
                ids << QString::fromStdString(row.slide);
            }
            scatter->setData(truth, predicted, ids);
            win->addTab(scatter, tr("Predicted vs true"));
        } else {
            auto* roc = new RocPlot;
            std::map<int, std::pair<std::vector<double>, std::vector<double>>> byRound;
            std::vector<double> allScores, allLabels;
            for (const auto& row : predictions) {
                byRound[row.round].first.push_back(row.prediction);
                byRound[row.round].second.push_back(row.label);
                allScores.push_back(row.prediction);
                allLabels.push_back(row.label);
            }
            for (const auto& [round, data] : byRound)
                roc->addCurve(tr("fold %1").arg(round), rocCurve(data.first, data.second));
            roc->addCurve(tr("all"), rocCurve(allScores, allLabels));
            win->addTab(roc, tr("ROC"));
        }
        win->addTab(curves, tr("Training curves"));
    } catch (const std::exception& e) {
        delete win;
        status(tr("%1: %2").arg(runDir, QString::fromUtf8(e.what())));
        return false;
    }
    win->resize(820, 560);
    win->show();
    return true;
}

bool Workflow::openResult(const QString& path) {
    const auto it = results_.constFind(path);
    ResultKind kind;
    ResultInfo info{};
    if (it != results_.constEnd()) {
        info = *it;
        kind = info.kind;
    } else if (QFileInfo(path).isDir()) {
        kind = ResultKind::SlideModelRun;
    } else if (path.endsWith(QLatin1String("_heatmap.h5"))) {
        kind = ResultKind::Heatmap;
    } else {
        kind = ResultKind::CompressedGrid;
    }
    bool ok = false;
    switch (kind) {
    case ResultKind::CompressedGrid:
        ok = openSlideWithGrid(path, info.slide);
        break;
    case ResultKind::Heatmap:
        ok = openSlideWithHeatmap(path, info.slide);
        break;
    case ResultKind::SlideModelRun:
        ok = openRunPlots(path);
        break;
    case ResultKind::Encoder:
        if (auto* plot = curvesFor(info.job)) {
            curvesTabs_->setCurrentWidget(plot);
            trainingDock_->show();
            trainingDock_->raise();
            ok = true;
        } else {
            status(tr("%1: its training curves were closed").arg(path));
        }
        break;
    }
    if (ok)
        Q_EMIT resultOpened(path);
    return ok;
}

// ------------------------------------------------------------------------------------------ compare

CompareView* Workflow::openCompare(const QString& slidePath, const QStringList& heatmapFiles,
                                   const QString& annotationXml, QString* error) {
    auto* view = new CompareView(window_);
    view->setWindowFlag(Qt::Window);
    view->setAttribute(Qt::WA_DeleteOnClose);
    view->setAttribute(Qt::WA_QuitOnClose, false);
    if (!view->openFiles(slidePath, heatmapFiles, annotationXml, error)) {
        delete view;
        return nullptr;
    }
    view->setWindowTitle(tr("Compare heatmaps — %1").arg(QFileInfo(slidePath).fileName()));
    connect(view, &CompareView::loadFailed, this, [this](const QString& m) { status(m); });
    compareViews_.push_back(view);
    view->resize(1200, 700);
    view->show();
    return view;
}

QList<CompareView*> Workflow::compareViews() const {
    QList<CompareView*> out;
    for (const auto& v : compareViews_)
        if (v)
            out << v.data();
    return out;
}

// ------------------------------------------------------------------------------------------ dialogs

void Workflow::showCompressDialog() {
    CompressDialog d(window_);
    if (auto* tab = window_->currentTab(); tab && d.options().slides.isEmpty()) {
        auto o = d.options();
        o.slides = {tab->path()};
        d.setOptions(o);
    }
    if (d.exec() != QDialog::Accepted)
        return;
    QString error;
    if (!startCompress(d.options(), &error))
        QMessageBox::warning(window_, tr("Compress slides"), error);
}

void Workflow::showTrainEncoderDialog() {
    TrainEncoderDialog d(window_);
    if (d.exec() != QDialog::Accepted)
        return;
    QString error;
    if (!startTrainEncoder(d.options(), &error))
        QMessageBox::warning(window_, tr("Train encoder"), error);
}

void Workflow::showTrainSlideModelDialog() {
    TrainSlideModelDialog d(window_);
    if (const QString csv = cohortPanel_->model()->cohortFile(); !csv.isEmpty() && d.options().cohort.isEmpty()) {
        auto o = d.options();
        o.cohort = csv;
        d.setOptions(o);
    }
    if (d.exec() != QDialog::Accepted)
        return;
    QString error;
    if (!startTrainSlideModel(d.options(), &error))
        QMessageBox::warning(window_, tr("Train slide model"), error);
}

void Workflow::showGradCamDialog() {
    GradCamDialog d(window_);
    if (d.exec() != QDialog::Accepted)
        return;
    QString error;
    if (!startGradCam(d.options(), &error))
        QMessageBox::warning(window_, tr("Grad-CAM"), error);
}

void Workflow::showCompareDialog() {
    CompareDialog d(window_->currentTab() ? window_->currentTab()->path() : QString(), window_);
    if (d.exec() != QDialog::Accepted)
        return;
    QString error;
    if (!openCompare(d.slide(), d.heatmaps(), d.xml(), &error))
        QMessageBox::warning(window_, tr("Compare heatmaps"), error);
}

} // namespace nic
