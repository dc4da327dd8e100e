#pragma once
// The compare view (the paper's Fig. 5, live): two to six SlideViews of the same slide laid out in a grid,
// each showing the Grad-CAM heatmap of a different model (titled with the model's name) over the slide,
// plus the same annotations. Panning or zooming one view moves all of them.
//
// Synchronisation: every view's viewportChanged() copies its centre and zoom into the others with
// SlideView::setViewport() (each view keeps its own widget size). A re-entrancy flag stops the echo
// that setViewport() emits from bouncing back. A view whose slide finishes opening after the user has
// already moved another one takes the current shared viewport instead of its own fit.
// Loading (openFiles) runs in the background; errors are shown in the view with their cause and
// reported by loadFailed(), never thrown.
#include "ui/colormap.h"
#include "ui/heatmapgrid.h"

#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include <memory>
#include <optional>

class QComboBox;
class QGridLayout;
class QLabel;
class QSlider;

namespace nic {

class AnnotationSet;
class SlideView;

/// One heatmap of a comparison: the title shown above its view and its values.
struct CompareHeatmap {
    QString title;                               ///< the model's name ("" → the file name)
    QString source;                              ///< file it came from (tooltip), may be empty
    std::shared_ptr<const HeatmapGrid> grid;
};

/// The name to show for a slide model: "<run> fold <k>" for `<run>/fold<k>/model.pt` (a `nic train`
/// run), else the file's stem; "" for "".
QString modelDisplayName(const QString& modelPath);

/// Reads a heatmap file for comparison: a `<slide>_heatmap.h5` written by `nic gradcam` (cells without
/// tissue become "no data"; titled with its model's name) or an ASAP `_likelihood_map.tif` (needs the
/// slide's level-0 width; titled with its file name). Throws nic::Error subclasses naming the file and cause.
CompareHeatmap loadCompareHeatmap(const QString& path, double slideWidth);

class CompareView : public QWidget {
    Q_OBJECT
public:
    static constexpr int kMinViews = 2;
    static constexpr int kMaxViews = 6;

    explicit CompareView(QWidget* parent = nullptr);

    /// Replaces the views: one per heatmap (kMinViews..kMaxViews), each opening `slidePath` in the
    /// background. Returns false (views unchanged) and sets `error` for a count out of range.
    bool setComparison(const QString& slidePath, const QVector<CompareHeatmap>& heatmaps, QString* error = nullptr);
    /// Opens `slidePath` in 2..6 views and, once the slide is open, reads `heatmapFiles` (see
    /// loadCompareHeatmap) and `annotationXml` ("" = `<stem>.xml` beside the slide when it exists) in
    /// the background. Returns false for a count out of range; later failures go to loadFailed().
    bool openFiles(const QString& slidePath, const QStringList& heatmapFiles, const QString& annotationXml = {},
                   QString* error = nullptr);
    /// Shows `set` in every view (one shared set).
    void setAnnotations(std::shared_ptr<AnnotationSet> set);

    int viewCount() const { return static_cast<int>(cells_.size()); }
    SlideView* view(int index) const { return cells_.at(index).view; }
    QLabel* titleLabel(int index) const { return cells_.at(index).title; }
    QString slidePath() const { return slidePath_; }
    /// Grid shape for `count` views: 2 → 1×2, 3 → 1×3, 4 → 2×2, 5 and 6 → 2×3 (rows, columns).
    static std::pair<int, int> gridShape(int count);
    /// True when every view has its slide open and its heatmap set.
    bool isReady() const;
    QLabel* statusLabel() const { return status_; }

    void setHeatmapOpacity(double opacity);
    void setColorMap(ColorMapKind kind);
    /// The whole comparison (titles and rendered views) as one image of the widget's size.
    QImage renderToImage();

Q_SIGNALS:
    /// Every view has opened the slide and shows its heatmap.
    void ready();
    /// Something could not be opened or read (message names the file and the cause).
    void loadFailed(const QString& message);

private:
    struct Cell {
        QWidget* frame = nullptr;
        QLabel* title = nullptr;
        SlideView* view = nullptr;
    };
    void clearCells();
    void addCell(const CompareHeatmap& heatmap);
    void syncFrom(SlideView* source);
    void onViewOpened(SlideView* view);
    void loadHeatmapFiles(const QStringList& files, const QString& annotationXml, double slideWidth);
    void fail(const QString& message);
    void checkReady();

    QString slidePath_;
    QVector<Cell> cells_;
    QGridLayout* grid_;
    QLabel* status_;
    QComboBox* colorMap_;
    QSlider* opacity_;
    bool syncing_ = false;
    bool readySent_ = false;
    std::optional<std::tuple<double, double, double>> shared_; ///< centre x, y and zoom all views follow
    quint64 serial_ = 0;                                        ///< drops results of a replaced comparison
    QStringList pendingFiles_;
    QString pendingXml_;
};

} // namespace nic
