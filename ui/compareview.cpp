#include "ui/compareview.h"

#include "core/annotations/annotation.h"
#include "core/base/error.h"
#include "core/heatmaps/heatmapeval.h"
#include "ui/async.h"
#include "ui/slideview.h"

#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPainter>
#include <QSlider>
#include <QVBoxLayout>

#include <cmath>
#include <filesystem>
#include <limits>

namespace nic {

QString modelDisplayName(const QString& modelPath) {
    if (modelPath.isEmpty())
        return {};
    const QFileInfo info(modelPath);
    const QString foldDir = info.path();              // <run>/fold<k> (the folders need not exist)
    const QString fold = QFileInfo(foldDir).fileName();
    if (info.fileName() == QLatin1String("model.pt") && fold.startsWith(QLatin1String("fold")))
        return QStringLiteral("%1 fold %2").arg(QFileInfo(QFileInfo(foldDir).path()).fileName(), fold.mid(4));
    return info.completeBaseName();
}

CompareHeatmap loadCompareHeatmap(const QString& path, double slideWidth) {
    CompareHeatmap out;
    out.source = path;
    const std::filesystem::path p = path.toStdString();
    const QString suffix = QFileInfo(path).suffix().toLower();
    auto grid = std::make_shared<HeatmapGrid>();
    if (suffix == QLatin1String("h5") || suffix == QLatin1String("hdf5")) {
        HeatmapData d = readHeatmapFile(p);
        grid->width = d.cols;
        grid->height = d.rows;
        grid->cellSize = d.cellSize;
        grid->values = std::move(d.heat);
        // Background cells carry heat 0; drawn, they would paint the glass in the colour map's low end.
        if (d.tissue.size() == grid->values.size())
            for (std::size_t i = 0; i < d.tissue.size(); ++i)
                if (!(d.tissue[i] > 0.0F))
                    grid->values[i] = std::numeric_limits<float>::quiet_NaN();
        out.title = modelDisplayName(QString::fromStdString(d.model));
    } else if (suffix == QLatin1String("tif") || suffix == QLatin1String("tiff")) {
        if (!(slideWidth > 0.0))
            throw InvalidArgument(path.toStdString() + ": the slide's width is needed to place a likelihood map");
        *grid = loadLikelihoodMap(p, slideWidth);
    } else {
        throw InvalidArgument(path.toStdString() +
                              ": not a heatmap file (expected <slide>_heatmap.h5 from nic gradcam or an ASAP "
                              "_likelihood_map.tif)");
    }
    if (grid->empty())
        throw IoError(path.toStdString() + ": the heatmap is empty");
    grid->source = path.toStdString();
    if (out.title.isEmpty())
        out.title = QFileInfo(path).completeBaseName();
    out.grid = std::move(grid);
    return out;
}

CompareView::CompareView(QWidget* parent) : QWidget(parent) {
    auto* outer = new QVBoxLayout(this);
    outer->setContentsMargins(4, 4, 4, 4);
    auto* bar = new QHBoxLayout;
    colorMap_ = new QComboBox(this);
    for (ColorMapKind k : colorMapKinds())
        colorMap_->addItem(QString::fromStdString(colorMapName(k)), static_cast<int>(k));
    colorMap_->setCurrentIndex(colorMap_->findData(static_cast<int>(ColorMapKind::Jet)));
    opacity_ = new QSlider(Qt::Horizontal, this);
    opacity_->setRange(0, 100);
    opacity_->setValue(50);
    opacity_->setMaximumWidth(160);
    status_ = new QLabel(this);
    status_->setWordWrap(true);
    bar->addWidget(new QLabel(tr("Colour map"), this));
    bar->addWidget(colorMap_);
    bar->addSpacing(12);
    bar->addWidget(new QLabel(tr("Opacity"), this));
    bar->addWidget(opacity_);
    bar->addSpacing(12);
    bar->addWidget(status_, 1);
    outer->addLayout(bar);
    grid_ = new QGridLayout;
    grid_->setSpacing(4);
    outer->addLayout(grid_, 1);
    connect(colorMap_, &QComboBox::currentIndexChanged, this,
            [this](int) { setColorMap(static_cast<ColorMapKind>(colorMap_->currentData().toInt())); });
    connect(opacity_, &QSlider::valueChanged, this, [this](int v) { setHeatmapOpacity(v / 100.0); });
}

std::pair<int, int> CompareView::gridShape(int count) {
    if (count <= 3)
        return {1, std::max(count, 1)};
    return {2, (count + 1) / 2};
}

void CompareView::clearCells() {
    for (auto& c : cells_) {
        grid_->removeWidget(c.frame);
        delete c.frame; // the views' GL resources go with them
    }
    cells_.clear();
}

void CompareView::addCell(const CompareHeatmap& heatmap) {
    Cell c;
    c.frame = new QWidget(this);
    auto* lay = new QVBoxLayout(c.frame);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(2);
    c.title = new QLabel(heatmap.title.isEmpty() ? QFileInfo(heatmap.source).completeBaseName() : heatmap.title, c.frame);
    c.title->setAlignment(Qt::AlignCenter);
    QFont f = c.title->font();
    f.setBold(true);
    c.title->setFont(f);
    c.title->setToolTip(heatmap.source);
    c.view = new SlideView(c.frame);
    c.view->setAnimationsEnabled(false); // an animated zoom would make every other view repaint per frame
    c.view->setHeatmapOpacity(opacity_->value() / 100.0);
    c.view->setColorMap(static_cast<ColorMapKind>(colorMap_->currentData().toInt()));
    if (heatmap.grid)
        c.view->setHeatmap(heatmap.grid);
    lay->addWidget(c.title);
    lay->addWidget(c.view, 1);
    SlideView* v = c.view;
    connect(v, &SlideView::viewportChanged, this, [this, v] { syncFrom(v); });
    connect(v, &SlideView::slideOpened, this, [this, v] { onViewOpened(v); });
    connect(v, &SlideView::slideFailed, this, [this](const QString& m) { fail(m); });
    cells_.push_back(c);
}

bool CompareView::setComparison(const QString& slidePath, const QVector<CompareHeatmap>& heatmaps, QString* error) {
    const auto n = static_cast<int>(heatmaps.size());
    if (n < kMinViews || n > kMaxViews) {
        if (error)
            *error = tr("Choose %1 to %2 heatmaps to compare (got %3)").arg(kMinViews).arg(kMaxViews).arg(n);
        return false;
    }
    ++serial_;
    clearCells();
    slidePath_ = slidePath;
    shared_.reset();
    readySent_ = false;
    pendingFiles_.clear();
    status_->clear();
    for (const auto& h : heatmaps)
        addCell(h);
    const auto [rows, cols] = gridShape(n);
    for (int i = 0; i < n; ++i)
        grid_->addWidget(cells_[i].frame, i / cols, i % cols);
    for (int r = 0; r < rows; ++r)
        grid_->setRowStretch(r, 1);
    for (int c = 0; c < cols; ++c)
        grid_->setColumnStretch(c, 1);
    for (auto& c : cells_)
        c.view->openSlide(slidePath);
    return true;
}

bool CompareView::openFiles(const QString& slidePath, const QStringList& heatmapFiles, const QString& annotationXml,
                            QString* error) {
    QVector<CompareHeatmap> placeholders;
    for (const auto& f : heatmapFiles)
        placeholders.push_back({QFileInfo(f).completeBaseName(), f, nullptr});
    if (!setComparison(slidePath, placeholders, error))
        return false;
    pendingFiles_ = heatmapFiles;
    pendingXml_ = annotationXml;
    status_->setText(tr("opening %1 …").arg(QFileInfo(slidePath).fileName()));
    return true;
}

void CompareView::onViewOpened(SlideView* view) {
    if (shared_) {
        // Another view was already moved: join it rather than keep this view's own fit.
        const QSignalBlocker block(view);
        Viewport vp = view->viewport();
        std::tie(vp.centerX, vp.centerY, vp.zoom) = *shared_;
        view->setViewport(vp);
    }
    if (!pendingFiles_.isEmpty()) {
        const QStringList files = pendingFiles_;
        pendingFiles_.clear();
        loadHeatmapFiles(files, pendingXml_, view->pyramid().width());
    }
    checkReady();
}

void CompareView::loadHeatmapFiles(const QStringList& files, const QString& annotationXml, double slideWidth) {
    struct Result {
        QVector<CompareHeatmap> heatmaps;
        std::shared_ptr<AnnotationSet> annotations;
        QStringList errors;
    };
    status_->setText(tr("reading %n heatmap(s) …", nullptr, static_cast<int>(files.size())));
    const quint64 serial = serial_;
    runAsync<Result>(
        this,
        [files, annotationXml, slideWidth, slide = slidePath_.toStdString()] {
            Result r;
            for (const auto& f : files) {
                try {
                    r.heatmaps.push_back(loadCompareHeatmap(f, slideWidth));
                } catch (const std::exception& e) {
                    r.heatmaps.push_back({});
                    r.errors << QString::fromUtf8(e.what());
                }
            }
            try {
                std::filesystem::path xml = annotationXml.toStdString();
                if (xml.empty())
                    if (auto found = findAnnotationXml(slide))
                        xml = *found;
                if (!xml.empty())
                    r.annotations = std::make_shared<AnnotationSet>(AnnotationSet::load(xml));
            } catch (const std::exception& e) {
                r.errors << QString::fromUtf8(e.what());
            }
            return r;
        },
        [this, serial](const Result& r) {
            if (serial != serial_)
                return; // a newer comparison replaced this one
            for (int i = 0; i < viewCount() && i < r.heatmaps.size(); ++i) {
                const auto& h = r.heatmaps[i];
                if (!h.grid)
                    continue;
                cells_[i].title->setText(h.title);
                cells_[i].view->setHeatmap(h.grid);
            }
            if (r.annotations)
                setAnnotations(r.annotations);
            if (!r.errors.isEmpty())
                fail(r.errors.join(QLatin1Char('\n')));
            else
                status_->clear();
            checkReady();
        });
}

void CompareView::setAnnotations(std::shared_ptr<AnnotationSet> set) {
    for (auto& c : cells_)
        c.view->setAnnotations(set);
}

void CompareView::syncFrom(SlideView* source) {
    if (syncing_ || !source->hasSlide())
        return;
    syncing_ = true;
    const Viewport& src = source->viewport();
    shared_ = std::make_tuple(src.centerX, src.centerY, src.zoom);
    for (auto& c : cells_) {
        if (c.view == source || !c.view->hasSlide())
            continue;
        Viewport vp = c.view->viewport();
        vp.centerX = src.centerX;
        vp.centerY = src.centerY;
        vp.zoom = src.zoom;
        if (!(vp == c.view->viewport()))
            c.view->setViewport(vp);
    }
    syncing_ = false;
}

bool CompareView::isReady() const {
    if (cells_.isEmpty())
        return false;
    for (const auto& c : cells_)
        if (!c.view->hasSlide() || !c.view->heatmap())
            return false;
    return true;
}

void CompareView::checkReady() {
    if (!readySent_ && isReady()) {
        readySent_ = true;
        Q_EMIT ready();
    }
}

void CompareView::fail(const QString& message) {
    status_->setText(message);
    status_->setStyleSheet(QStringLiteral("color: #b00020"));
    Q_EMIT loadFailed(message);
}

void CompareView::setHeatmapOpacity(double opacity) {
    for (auto& c : cells_)
        c.view->setHeatmapOpacity(opacity);
}

void CompareView::setColorMap(ColorMapKind kind) {
    for (auto& c : cells_)
        c.view->setColorMap(kind);
}

QImage CompareView::renderToImage() {
    QImage out(size(), QImage::Format_RGB32);
    out.fill(palette().window().color());
    QPainter p(&out);
    render(&p); // titles and controls
    for (const auto& c : cells_) {
        // QOpenGLWidget content comes from its framebuffer (render() would not include it everywhere).
        const QPoint at = c.view->mapTo(this, QPoint(0, 0));
        p.drawImage(at, c.view->renderToImage());
    }
    return out;
}

} // namespace nic
