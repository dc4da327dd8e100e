#include "ui/slidetab.h"

#include "core/annotations/annotation.h"
#include "core/slide/slide.h"
#include "ui/annotationrecovery.h"
#include "ui/async.h"
#include "ui/overviewnavigator.h"
#include "ui/slideview.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QSettings>
#include <QSlider>
#include <QSplitter>
#include <QTreeWidget>
#include <QVBoxLayout>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <cmath>

namespace nic {

namespace {

constexpr int kIndexRole = Qt::UserRole + 1; // annotation index (−1 for a group item)
constexpr int kGroupRole = Qt::UserRole + 2; // group name of a group item

SlideTab::RecoveryPrompt& recoveryPrompt() {
    static SlideTab::RecoveryPrompt prompt;
    return prompt;
}

QIcon swatch(const QColor& c) {
    QPixmap pm(12, 12);
    pm.fill(c);
    return QIcon(pm);
}

} // namespace

SlideTab::SlideTab(const QString& path, QWidget* parent) : QWidget(parent), path_(path) {
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    auto* splitter = new QSplitter(Qt::Horizontal, this);
    layout->addWidget(splitter);
    view_ = new SlideView(splitter);
    splitter->addWidget(view_);

    auto* panel = new QWidget(splitter);
    panel_ = panel;
    auto* side = new QVBoxLayout(panel);
    side->setContentsMargins(4, 4, 4, 4);

    auto* overviewBox = new QGroupBox(tr("Overview"), panel);
    auto* ol = new QVBoxLayout(overviewBox);
    navigator_ = new OverviewNavigator(overviewBox);
    ol->addWidget(navigator_);
    side->addWidget(overviewBox);

    auto* annBox = new QGroupBox(tr("Annotations"), panel);
    auto* al = new QVBoxLayout(annBox);
    annLabel_ = new QLabel(tr("none"), annBox);
    annLabel_->setWordWrap(true);
    showAll_ = new QCheckBox(tr("Show annotations"), annBox);
    showAll_->setChecked(true);
    tree_ = new QTreeWidget(annBox);
    tree_->setHeaderLabels({tr("Group / annotation"), tr("Type")});
    tree_->header()->setSectionResizeMode(0, QHeaderView::Stretch);
    tree_->setToolTip(tr("Untick a group to hide it; double-click an annotation to zoom to it"));
    auto* saveButton = new QPushButton(tr("Save annotations"), annBox);
    al->addWidget(annLabel_);
    al->addWidget(showAll_);
    al->addWidget(tree_, 1);
    al->addWidget(saveButton);
    side->addWidget(annBox, 1);

    auto* heatBox = new QGroupBox(tr("Heatmap"), panel);
    auto* hl = new QFormLayout(heatBox);
    heatLabel_ = new QLabel(tr("none"), heatBox);
    heatLabel_->setWordWrap(true);
    heatVisible_ = new QCheckBox(tr("Show heatmap"), heatBox);
    heatVisible_->setChecked(true);
    opacity_ = new QSlider(Qt::Horizontal, heatBox);
    opacity_->setRange(0, 100);
    opacity_->setValue(50);
    colorMap_ = new QComboBox(heatBox);
    for (auto k : colorMapKinds())
        colorMap_->addItem(QString::fromStdString(colorMapName(k)), static_cast<int>(k));
    percentile_ = new QDoubleSpinBox(heatBox);
    percentile_->setRange(0.0, 100.0);
    percentile_->setDecimals(1);
    percentile_->setSuffix(tr(" %"));
    percentile_->setToolTip(tr("Hide values below this percentile of the heatmap"));
    hl->addRow(heatLabel_);
    hl->addRow(heatVisible_);
    hl->addRow(tr("Opacity"), opacity_);
    hl->addRow(tr("Colour map"), colorMap_);
    rendering_ = new QComboBox(heatBox);
    rendering_->addItem(tr("Cells"), static_cast<int>(HeatmapRendering::Cells));
    rendering_->addItem(tr("Smooth"), static_cast<int>(HeatmapRendering::Smooth));
    rendering_->setToolTip(tr("Cells: each grid cell a flat square; smooth: interpolated between cell centres"));
    contour_ = new QCheckBox(tr("Outline at threshold"), heatBox);
    contour_->setToolTip(tr("Draw the heatmap's iso-line at the threshold, to compare with annotation outlines"));
    hl->addRow(tr("Threshold"), percentile_);
    hl->addRow(tr("Rendering"), rendering_);
    hl->addRow(contour_);

    // View settings are remembered between runs (QSettings "view/…").
    {
        const QSettings settings;
        opacity_->setValue(std::clamp(settings.value(QStringLiteral("view/opacity"), 50).toInt(), 0, 100));
        const int cmap = colorMap_->findData(settings.value(QStringLiteral("view/colorMap"), colorMap_->currentData()).toInt());
        if (cmap >= 0)
            colorMap_->setCurrentIndex(cmap);
        percentile_->setValue(settings.value(QStringLiteral("view/thresholdPercentile"), 0.0).toDouble());
        rendering_->setCurrentIndex(settings.value(QStringLiteral("view/heatmapRendering")).toString() == QLatin1String("smooth") ? 1 : 0);
        contour_->setChecked(settings.value(QStringLiteral("view/contour"), false).toBool());
    }
    side->addWidget(heatBox);

    auto* latentBox = new QGroupBox(tr("Latent view"), panel);
    auto* ll = new QFormLayout(latentBox);
    latentLabel_ = new QLabel(tr("none (File ▸ Load latent grid, or <slide>.h5 beside the slide)"), latentBox);
    latentLabel_->setWordWrap(true);
    latentLabel_->setToolTip(tr("The compressed slide made visible: each grid cell coloured by the first three "
                                "principal components of its embedding (PC1 red, PC2 green, PC3 blue)"));
    latentVisible_ = new QCheckBox(tr("Show latent view"), latentBox);
    latentVisible_->setChecked(true);
    latentOpacity_ = new QSlider(Qt::Horizontal, latentBox);
    latentOpacity_->setRange(0, 100);
    latentOpacity_->setValue(70);
    ll->addRow(latentLabel_);
    ll->addRow(latentVisible_);
    ll->addRow(tr("Opacity"), latentOpacity_);
    side->addWidget(latentBox);
    connect(latentVisible_, &QCheckBox::toggled, view_, &SlideView::setLatentVisible);
    connect(latentOpacity_, &QSlider::valueChanged, this, [this](int v) { view_->setLatentOpacity(v / 100.0); });
    splitter->addWidget(panel);
    splitter->setStretchFactor(0, 1);
    splitter->setStretchFactor(1, 0);
    splitter->setSizes({900, 260});

    view_->setHeatmapOpacity(opacity_->value() / 100.0);
    view_->setColorMap(static_cast<ColorMapKind>(colorMap_->currentData().toInt()));
    view_->setHeatmapRendering(static_cast<HeatmapRendering>(rendering_->currentData().toInt()));
    view_->setContourVisible(contour_->isChecked());
    connect(view_, &SlideView::slideOpened, this, &SlideTab::onSlideOpened);
    connect(view_, &SlideView::viewportChanged, this,
            [this] { navigator_->setViewRect(view_->viewport().visibleLevel0()); });
    connect(navigator_, &OverviewNavigator::centerRequested, view_, &SlideView::centerOn);
    connect(showAll_, &QCheckBox::toggled, view_, &SlideView::setAnnotationsVisible);
    connect(tree_, &QTreeWidget::itemChanged, this, [this](QTreeWidgetItem* item, int column) {
        if (rebuilding_ || column != 0 || item->data(0, kIndexRole).toInt() >= 0)
            return;
        view_->setGroupVisible(item->data(0, kGroupRole).toString(), item->checkState(0) == Qt::Checked);
    });
    connect(tree_, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* item, int) {
        const int index = item->data(0, kIndexRole).toInt();
        if (index >= 0)
            zoomToAnnotation(index);
    });
    connect(tree_, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* item, QTreeWidgetItem*) {
        view_->setSelectedAnnotation(item ? item->data(0, kIndexRole).toInt() : -1);
    });
    connect(saveButton, &QPushButton::clicked, this, &SlideTab::saveAnnotations);
    recovery_ = new AnnotationRecovery(path, [this] { return recoverySnapshot(); }, this);
    connect(recovery_, &AnnotationRecovery::failed, this, &SlideTab::statusMessage);
    connect(view_, &SlideView::drawingChanged, this, &SlideTab::annotationsChanged);
    connect(view_, &SlideView::annotationAdded, this, [this](int) {
        rebuildAnnotationTree();
        annotationsChanged();
        saveAnnotations();
        updateAgreement();
    });
    connect(heatVisible_, &QCheckBox::toggled, view_, &SlideView::setHeatmapVisible);
    connect(opacity_, &QSlider::valueChanged, this, [this](int v) {
        view_->setHeatmapOpacity(v / 100.0);
        QSettings().setValue(QStringLiteral("view/opacity"), v);
    });
    connect(colorMap_, &QComboBox::currentIndexChanged, this, [this](int) {
        view_->setColorMap(static_cast<ColorMapKind>(colorMap_->currentData().toInt()));
        QSettings().setValue(QStringLiteral("view/colorMap"), colorMap_->currentData().toInt());
    });
    connect(percentile_, &QDoubleSpinBox::valueChanged, this, [this](double v) {
        applyThreshold();
        QSettings().setValue(QStringLiteral("view/thresholdPercentile"), v);
    });
    connect(rendering_, &QComboBox::currentIndexChanged, this, [this](int) {
        const auto mode = static_cast<HeatmapRendering>(rendering_->currentData().toInt());
        view_->setHeatmapRendering(mode);
        QSettings().setValue(QStringLiteral("view/heatmapRendering"),
                             mode == HeatmapRendering::Smooth ? QStringLiteral("smooth") : QStringLiteral("cells"));
    });
    connect(contour_, &QCheckBox::toggled, this, [this](bool on) {
        view_->setContourVisible(on);
        QSettings().setValue(QStringLiteral("view/contour"), on);
    });

    annotationPath_ = QString::fromStdString(std::filesystem::path(path.toStdString()).replace_extension(".xml").string());
    view_->openSlide(path);
}

SlideTab::~SlideTab() {
    // Closed normally: whatever was not saved was given up on purpose.
    recovery_->remove();
}

void SlideTab::setRecoveryPrompt(RecoveryPrompt prompt) { recoveryPrompt() = std::move(prompt); }

QString SlideTab::title() const { return QFileInfo(path_).fileName(); }

void SlideTab::annotationsChanged() {
    ++changes_;
    recovery_->schedule();
}

AnnotationSet SlideTab::recoverySnapshot() const {
    AnnotationSet set;
    if (const auto current = view_->annotations())
        set = *current;
    const auto outline = view_->polygonInProgress();
    if (!outline.empty()) {
        Annotation a;
        a.name = AnnotationRecovery::unfinishedName().toStdString();
        a.type = AnnotationType::Polygon;
        a.color = "#FF8000";
        a.coordinates = outline;
        set.annotations.push_back(std::move(a));
    }
    return set;
}

bool SlideTab::offerRecovery(const QString& recoveryFile) {
    AnnotationSet set;
    try {
        set = AnnotationSet::load(recoveryFile.toStdString());
    } catch (const std::exception& e) {
        const QString message = tr("Cannot read the annotation recovery file: %1").arg(QString::fromUtf8(e.what()));
        Q_EMIT layerFailed(message);
        Q_EMIT statusMessage(message);
        return false;
    }
    const int count = static_cast<int>(set.annotations.size());
    bool restore = false;
    if (const auto& prompt = recoveryPrompt()) {
        restore = prompt(path_, recoveryFile, count);
    } else {
        QMessageBox box(QMessageBox::Question, tr("Unsaved annotations"),
                        tr("%1 was not closed normally while its annotations were being edited. "
                           "%2 annotations (with any outline still being drawn) were kept in %3.")
                            .arg(QFileInfo(path_).fileName())
                            .arg(count)
                            .arg(recoveryFile),
                        QMessageBox::NoButton, this);
        auto* restoreButton = box.addButton(tr("Restore"), QMessageBox::AcceptRole);
        box.addButton(tr("Discard"), QMessageBox::DestructiveRole);
        box.setDefaultButton(restoreButton);
        box.exec();
        restore = box.clickedButton() == restoreButton;
    }
    if (!restore) {
        recovery_->remove();
        Q_EMIT recoveryHandled(false);
        return false;
    }
    // The restored set replaces the file beside the slide (it was the whole set when written) and is
    // saved back there, which removes the recovery file once written.
    setAnnotations(std::make_shared<AnnotationSet>(std::move(set)));
    ++changes_;
    saveAnnotations();
    Q_EMIT annotationsLoaded(count);
    Q_EMIT recoveryHandled(true);
    return true;
}

void SlideTab::onSlideOpened() {
    navigator_->setSlide(view_->thumbnail(), view_->pyramid().width(), view_->pyramid().height());
    navigator_->setViewRect(view_->viewport().visibleLevel0());
    const std::filesystem::path slidePath(path_.toStdString());
    const QString recoveryFile = AnnotationRecovery::existingRecoveryFile(path_);
    const bool restored = !recoveryFile.isEmpty() && offerRecovery(recoveryFile);
    if (const auto xml = findAnnotationXml(slidePath); xml && !restored)
        loadAnnotations(QString::fromStdString(xml->string()));
    if (const auto heat = findHeatmap(slidePath))
        loadHeatmap(QString::fromStdString(heat->string()));
    std::error_code ec;
    if (const auto h5 = latentGridPathFor(slidePath); std::filesystem::is_regular_file(h5, ec))
        loadLatent(QString::fromStdString(h5.string()));
}

void SlideTab::loadLatent(const QString& h5Path) {
    struct Result {
        std::shared_ptr<const LatentRgb> latent;
        QString error;
    };
    latentLabel_->setText(tr("loading %1 …").arg(QFileInfo(h5Path).fileName()));
    runAsync<Result>(
        this,
        [p = h5Path.toStdString()] {
            Result r;
            try {
                r.latent = std::make_shared<const LatentRgb>(loadLatentView(p));
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this](const Result& r) {
            if (!r.error.isEmpty()) {
                latentLabel_->setText(tr("Cannot load latent grid: %1").arg(r.error));
                Q_EMIT layerFailed(r.error);
                Q_EMIT statusMessage(r.error);
                return;
            }
            setLatentView(r.latent);
        });
}

void SlideTab::setLatentView(std::shared_ptr<const LatentRgb> latent) {
    if (latent) {
        QString text = tr("%1 × %2 cells").arg(latent->width).arg(latent->height);
        if (!latent->source.empty())
            text += tr(" from %1").arg(QFileInfo(QString::fromStdString(latent->source)).fileName());
        if (!latent->explainedVariance.empty()) {
            QStringList parts;
            for (double v : latent->explainedVariance)
                parts << QStringLiteral("%1 %").arg(v * 100.0, 0, 'f', 1);
            text += tr("; variance explained by PC1–3: %1").arg(parts.join(QStringLiteral(", ")));
        }
        latentLabel_->setText(text);
    }
    view_->setLatentView(std::move(latent));
    Q_EMIT latentLoaded();
}

void SlideTab::loadAnnotations(const QString& xmlPath) {
    struct Result {
        std::shared_ptr<AnnotationSet> set;
        QString error;
    };
    annLabel_->setText(tr("loading %1 …").arg(QFileInfo(xmlPath).fileName()));
    runAsync<Result>(
        this,
        [p = xmlPath.toStdString()] {
            Result r;
            try {
                r.set = std::make_shared<AnnotationSet>(AnnotationSet::load(p));
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, xmlPath](const Result& r) {
            if (!r.error.isEmpty()) {
                annLabel_->setText(tr("Cannot load annotations: %1").arg(r.error));
                Q_EMIT layerFailed(r.error);
                Q_EMIT statusMessage(r.error);
                return;
            }
            annotationPath_ = xmlPath;
            view_->setAnnotations(r.set);
            rebuildAnnotationTree();
            updateAgreement();
            Q_EMIT annotationsLoaded(static_cast<int>(r.set->annotations.size()));
        });
}

void SlideTab::setAnnotations(std::shared_ptr<AnnotationSet> set) {
    view_->setAnnotations(std::move(set));
    rebuildAnnotationTree();
    updateAgreement();
}

void SlideTab::rebuildAnnotationTree() {
    rebuilding_ = true;
    tree_->clear();
    const auto set = view_->annotations();
    const int count = set ? static_cast<int>(set->annotations.size()) : 0;
    annLabel_->setText(count == 0 ? tr("none")
                                  : tr("%1 annotations in %2").arg(count).arg(QFileInfo(annotationPath_).fileName()));
    if (set) {
        std::map<std::string, QTreeWidgetItem*> groups;
        auto groupItem = [&](const std::string& name) {
            auto it = groups.find(name);
            if (it != groups.end())
                return it->second;
            auto* item = new QTreeWidgetItem(tree_);
            const QString qname = QString::fromStdString(name);
            item->setText(0, name.empty() ? tr("(no group)") : qname);
            item->setData(0, kIndexRole, -1);
            item->setData(0, kGroupRole, qname);
            item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
            item->setCheckState(0, view_->isGroupVisible(qname) ? Qt::Checked : Qt::Unchecked);
            if (const auto* g = set->findGroup(name))
                item->setIcon(0, swatch(QColor(QString::fromStdString(g->color))));
            item->setExpanded(true);
            groups[name] = item;
            return item;
        };
        for (const auto& g : set->groups)
            groupItem(g.name);
        for (int i = 0; i < count; ++i) {
            const auto& a = set->annotations[static_cast<std::size_t>(i)];
            auto* item = new QTreeWidgetItem(groupItem(a.group));
            item->setText(0, QString::fromStdString(a.name.empty() ? "#" + std::to_string(i) : a.name));
            item->setText(1, QString::fromLatin1(toString(a.type)));
            item->setData(0, kIndexRole, i);
            item->setIcon(0, swatch(view_->annotationColor(a)));
        }
    }
    rebuilding_ = false;
}

void SlideTab::zoomToAnnotation(int index) {
    const auto set = view_->annotations();
    if (!set || index < 0 || index >= static_cast<int>(set->annotations.size()))
        return;
    const auto& a = set->annotations[static_cast<std::size_t>(index)];
    if (a.coordinates.empty())
        return;
    double x0 = a.coordinates[0].x, x1 = x0, y0 = a.coordinates[0].y, y1 = y0;
    for (const auto& p : a.coordinates) {
        x0 = std::min(x0, p.x);
        x1 = std::max(x1, p.x);
        y0 = std::min(y0, p.y);
        y1 = std::max(y1, p.y);
    }
    // A dot gets a neighbourhood of 200 level-0 px.
    const double pad = (x1 - x0 < 1 && y1 - y0 < 1) ? 100.0 : 0.0;
    view_->zoomToRect({x0 - pad, y0 - pad, x1 - x0 + 2 * pad, y1 - y0 + 2 * pad});
    view_->setSelectedAnnotation(index);
}

void SlideTab::saveAnnotations() {
    const auto set = view_->annotations();
    if (!set)
        return;
    auto copy = std::make_shared<const AnnotationSet>(*set);
    const QString target = annotationPath_;
    const quint64 changesSaved = changes_;
    runAsync<QString>(
        this,
        [copy, p = target.toStdString()] {
            try {
                copy->save(p);
                return QString();
            } catch (const std::exception& e) {
                return QString::fromUtf8(e.what());
            }
        },
        [this, target, changesSaved](const QString& error) {
            if (!error.isEmpty()) {
                Q_EMIT layerFailed(error);
                Q_EMIT statusMessage(tr("Cannot save annotations: %1").arg(error));
                return;
            }
            // Everything is in the file now, unless more was drawn meanwhile (the recovery file keeps that).
            if (changesSaved == changes_ && view_->polygonInProgress().empty())
                recovery_->remove();
            Q_EMIT statusMessage(tr("Annotations saved to %1").arg(target));
            Q_EMIT annotationsSaved(target);
        });
}

void SlideTab::loadHeatmap(const QString& heatmapPath) {
    struct Result {
        std::shared_ptr<const HeatmapGrid> grid;
        QString error;
    };
    heatLabel_->setText(tr("loading %1 …").arg(QFileInfo(heatmapPath).fileName()));
    const double slideWidth = view_->pyramid().width();
    runAsync<Result>(
        this,
        [p = heatmapPath.toStdString(), slideWidth] {
            Result r;
            try {
                r.grid = std::make_shared<const HeatmapGrid>(loadHeatmapFile(p, slideWidth));
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this](const Result& r) {
            if (!r.error.isEmpty()) {
                heatLabel_->setText(tr("Cannot load heatmap: %1").arg(r.error));
                Q_EMIT layerFailed(r.error);
                Q_EMIT statusMessage(r.error);
                return;
            }
            setHeatmap(r.grid);
        });
}

void SlideTab::setHeatmap(std::shared_ptr<const HeatmapGrid> grid) {
    if (grid)
        heatLabel_->setText(tr("%1 × %2 cells%3")
                                .arg(grid->width)
                                .arg(grid->height)
                                .arg(grid->source.empty() ? QString()
                                                          : tr(" from %1").arg(QFileInfo(QString::fromStdString(grid->source)).fileName())));
    view_->setHeatmap(std::move(grid));
    applyThreshold();
    updateAgreement();
    Q_EMIT heatmapLoaded();
}

void SlideTab::setSidePanelVisible(bool on) { panel_->setVisible(on); }

bool SlideTab::isSidePanelVisible() const { return !panel_->isHidden(); }

void SlideTab::updateAgreement() {
    const quint64 serial = ++agreementSerial_;
    agreement_.reset();
    const auto grid = view_->heatmap();
    const auto set = view_->annotations();
    if (!grid || !grid->file || !set || grid->file->tissue.size() != grid->file->heat.size()) {
        updateInfo();
        return;
    }
    struct Result {
        std::optional<HeatmapScores> scores;
        QString error;
    };
    auto copy = std::make_shared<const AnnotationSet>(*set);
    runAsync<Result>(
        this,
        [data = grid->file, copy] {
            Result r;
            try {
                // As nic eval-heatmap does it: every area annotation is lesion, default options.
                const auto lesion = lesionFractionOnGrid(*copy, {}, data->cellSize, data->cols, data->rows);
                r.scores = scoreHeatmap(data->heat, lesion, data->tissue, data->cols, data->rows, HeatmapEvalOptions{});
            } catch (const std::exception& e) {
                r.error = QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, serial](const Result& r) {
            if (serial != agreementSerial_)
                return; // layers changed meanwhile; a newer computation follows
            if (!r.error.isEmpty())
                Q_EMIT statusMessage(tr("Cannot compare heatmap and annotations: %1").arg(r.error));
            agreement_ = r.scores;
            updateInfo();
        });
}

namespace {
QString score(double v) { return std::isfinite(v) ? QString::number(v, 'f', 3) : QStringLiteral("n/a"); }

// `nic gradcam` records the absolute path of the fold's checkpoint (<run>/fold<k>/model.pt): shown as its
// last three parts, with the fold named.
QString modelLabel(const std::string& model) {
    if (model.empty())
        return QObject::tr("unknown");
    const std::filesystem::path p(model);
    const auto parent = p.parent_path();
    std::filesystem::path shortPath = parent.parent_path().filename() / parent.filename() / p.filename();
    QString label = QString::fromStdString(shortPath.lexically_normal().string());
    const std::string dir = parent.filename().string();
    if (dir.size() > 4 && dir.rfind("fold", 0) == 0 &&
        std::all_of(dir.begin() + 4, dir.end(), [](unsigned char c) { return std::isdigit(c) != 0; }))
        label += QObject::tr(" (fold %1)").arg(QString::fromStdString(dir.substr(4)));
    return label;
}
} // namespace

QStringList SlideTab::infoLines() const {
    QStringList lines;
    const auto grid = view_->heatmap();
    if (!grid)
        return lines;
    if (const auto& d = grid->file) {
        QString pred = tr("Prediction %1").arg(score(d->prediction));
        if (!d->task.empty())
            pred += tr(" (%1)").arg(QString::fromStdString(d->task));
        lines << pred;
        lines << tr("Model %1, layer %2").arg(modelLabel(d->model)).arg(d->layer);
    } else {
        lines << tr("Heatmap %1 (records no prediction or model)")
                     .arg(QFileInfo(QString::fromStdString(grid->source)).fileName());
    }
    if (agreement_) {
        const auto& a = *agreement_;
        lines << tr("Pixel AUC %1 · pointing game %2")
                     .arg(score(a.pixelAuc), a.pointingDefined ? (a.pointingHit ? tr("hit") : tr("miss")) : tr("n/a"));
    }
    return lines;
}

void SlideTab::updateInfo() {
    view_->setInfoLines(infoLines());
    Q_EMIT infoUpdated();
}

void SlideTab::applyThreshold() {
    const auto grid = view_->heatmap();
    if (!grid)
        return;
    const double pct = percentile_->value();
    view_->setHeatmapThreshold(pct <= 0.0 ? -std::numeric_limits<double>::infinity() : percentileValue(*grid, pct));
}

} // namespace nic
