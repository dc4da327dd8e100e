#pragma once
// One open slide in nic-studio: the SlideView plus its side panel (overview navigator, annotation
// layer with per-group visibility and a zoom-to list, heatmap layer controls). Layers next to the
// slide are found as ASAP does (`<stem>.xml`; `<stem>_heatmap.h5` from `nic gradcam`, else `<stem>_likelihood_map.tif`) and loaded in the
// background once the slide is open; their errors are shown with the cause, never thrown.
// Heatmap controls (opacity, colour map, threshold percentile, cells/smooth, outline at threshold) start
// from and are saved to QSettings "view/…"; the view's info box shows the heatmap file's prediction and
// model and, with annotations, the agreement computed as `nic eval-heatmap` does.
#include "core/heatmaps/heatmapeval.h"
#include "ui/colormap.h"
#include "ui/heatmapgrid.h"
#include "ui/latentview.h"

#include <QString>
#include <QWidget>

#include <functional>
#include <memory>
#include <optional>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QSlider;
class QTreeWidget;
class QTreeWidgetItem;

namespace nic {

class AnnotationRecovery;
class AnnotationSet;
class OverviewNavigator;
class SlideView;

class SlideTab : public QWidget {
    Q_OBJECT
public:
    /// Starts opening `path` (asynchronously) in a new view.
    explicit SlideTab(const QString& path, QWidget* parent = nullptr);
    /// Closing the tab normally removes its annotation recovery file (annotationrecovery.h).
    ~SlideTab() override;

    /// Asked when a slide opens with unsaved annotation work left by a crash or kill: `annotations` of
    /// them (one possibly an unfinished outline) in `recoveryFile`. True = restore, false = discard.
    /// Default (an empty function): a Restore / Discard message box. Process-wide; for tests and scripts.
    using RecoveryPrompt = std::function<bool(const QString& slidePath, const QString& recoveryFile, int annotations)>;
    static void setRecoveryPrompt(RecoveryPrompt prompt);

    SlideView* view() const { return view_; }
    OverviewNavigator* navigator() const { return navigator_; }
    QString path() const { return path_; }
    QString title() const;

    /// Loads an ASAP XML file in the background (replaces the current annotations).
    void loadAnnotations(const QString& xmlPath);
    /// Loads a heatmap in the background: a `nic gradcam` HDF5 file or an ASAP likelihood TIFF.
    void loadHeatmap(const QString& heatmapPath);
    /// Shows `set` as the annotation layer (saved to annotationPath()).
    void setAnnotations(std::shared_ptr<AnnotationSet> set);
    /// Shows `grid` as the heatmap layer.
    void setHeatmap(std::shared_ptr<const HeatmapGrid> grid);
    /// Loads a compressed slide (HDF5 latent grid) in the background and shows its PCA colouring.
    void loadLatent(const QString& h5Path);
    void setLatentView(std::shared_ptr<const LatentRgb> latent);
    /// Where annotations are saved: the file they came from, else `<stem>.xml` beside the slide.
    QString annotationPath() const { return annotationPath_; }
    /// Saves the annotations atomically in the background; annotationsSaved/statusMessage follow.
    void saveAnnotations();
    /// Centres and zooms on annotation `index`.
    void zoomToAnnotation(int index);
    /// Shows or hides the side panel (focus mode hides it so the slide takes the whole tab).
    void setSidePanelVisible(bool on);
    bool isSidePanelVisible() const;
    /// Agreement of the heatmap with the annotations for this slide, computed (in the background) with the
    /// same core functions and default options as `nic eval-heatmap` (all area annotations are lesion,
    /// tissue fraction > 0, lesion fraction >= 0.5, pointing tolerance 0). nullopt until both layers are
    /// loaded, and for heatmaps that record no tissue (likelihood maps).
    std::optional<HeatmapScores> agreement() const { return agreement_; }
    /// The info box lines for the current layers (also shown by the view).
    QStringList infoLines() const;

    // Controls (exposed for tests).
    QTreeWidget* annotationTree() const { return tree_; }
    QSlider* opacitySlider() const { return opacity_; }
    QComboBox* colorMapCombo() const { return colorMap_; }
    QDoubleSpinBox* percentileSpin() const { return percentile_; }
    QLabel* heatmapLabel() const { return heatLabel_; }
    AnnotationRecovery* recovery() const { return recovery_; }
    QComboBox* renderingCombo() const { return rendering_; }
    QCheckBox* contourCheck() const { return contour_; }

Q_SIGNALS:
    void statusMessage(const QString& message);
    void annotationsLoaded(int count);
    void annotationsSaved(const QString& path);
    void heatmapLoaded();
    void latentLoaded();
    /// agreement() and the view's info box were updated.
    void infoUpdated();
    void layerFailed(const QString& message);
    /// A recovery file was found on opening and restored (true) or discarded (false).
    void recoveryHandled(bool restored);

private:
    void onSlideOpened();
    /// Offers the recovery file left beside the slide; true when its annotations were restored.
    bool offerRecovery(const QString& recoveryFile);
    /// The annotations plus the polygon being drawn (as an annotation named unfinishedName()).
    AnnotationSet recoverySnapshot() const;
    void annotationsChanged();
    void rebuildAnnotationTree();
    void applyThreshold();
    void updateAgreement();
    void updateInfo();
    QWidget* panel_;
    QComboBox* rendering_;
    QCheckBox* contour_;
    std::optional<HeatmapScores> agreement_;
    quint64 agreementSerial_ = 0;
    QString path_;
    QString annotationPath_;
    SlideView* view_;
    OverviewNavigator* navigator_;
    QTreeWidget* tree_;
    QCheckBox* showAll_;
    QLabel* annLabel_;
    QLabel* heatLabel_;
    QCheckBox* heatVisible_;
    QSlider* opacity_;
    QComboBox* colorMap_;
    QDoubleSpinBox* percentile_;
    QLabel* latentLabel_;
    QCheckBox* latentVisible_;
    QSlider* latentOpacity_;
    bool rebuilding_ = false;
    AnnotationRecovery* recovery_ = nullptr;
    /// Counts annotation changes; a save removes the recovery file only when none came after it.
    quint64 changes_ = 0;
};

} // namespace nic
