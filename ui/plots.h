#pragma once
// QCustomPlot-based figures of nic-studio: live training curves, ROC per fold, predicted-vs-true
// scatter and the encoder comparison bar chart. Every plot exports itself to PNG, PDF and SVG and its
// data to CSV, each written atomically (QSaveFile: the old file or nothing on failure).
// QCustomPlot is a private dependency of `ui`: it appears here only as a forward declaration.
#include "core/slidelearning/runfolder.h"

#include <QSize>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include <limits>

class QCustomPlot;
class QCPTextElement;
class QCPAxisRect;

namespace nic {

struct RocCurve;

/// Base of the plots: a QCustomPlot with a title and the exports. Right-click offers "Export…".
class PlotWidget : public QWidget {
    Q_OBJECT
public:
    QCustomPlot* customPlot() const { return plot_; }
    QString title() const;
    void setTitle(const QString& title);

    /// The plot's data as CSV text (header row first, '\n' line ends, RFC 4180 quoting).
    virtual QString csv() const = 0;

    /// Exports to `path`; `size` in pixels (PNG) or points (PDF, SVG); an invalid size means the
    /// widget's size when it is visible, else 800 × 500. On failure returns false and sets `error`
    /// to "cannot write <path>: <cause>"; an existing file is then left as it was.
    bool exportPng(const QString& path, QString* error = nullptr, QSize size = {});
    bool exportPdf(const QString& path, QString* error = nullptr, QSize size = {});
    bool exportSvg(const QString& path, QString* error = nullptr, QSize size = {});
    bool exportCsv(const QString& path, QString* error = nullptr) const;
    /// By extension (.png, .pdf, .svg, .csv, case-insensitive); another extension fails with
    /// "unsupported export format '<ext>' (use .png, .pdf, .svg or .csv)".
    bool exportTo(const QString& path, QString* error = nullptr, QSize size = {});

    QSize sizeHint() const override { return {720, 460}; }

public Q_SLOTS:
    /// Asks for a file name and exports (errors shown in a message box).
    void exportDialog();

protected:
    explicit PlotWidget(QWidget* parent);
    void contextMenuEvent(QContextMenuEvent* event) override;
    void showEvent(QShowEvent* event) override;
    QSize exportSize(QSize requested) const;

    QCustomPlot* plot_;
    QCPTextElement* title_;
};

/// One epoch of a training run. NaN = not measured.
struct EpochPoint {
    int epoch = 0;
    double trainLoss = std::numeric_limits<double>::quiet_NaN();
    double validationLoss = std::numeric_limits<double>::quiet_NaN();
    double validationMetric = std::numeric_limits<double>::quiet_NaN();
    double learningRate = std::numeric_limits<double>::quiet_NaN();

    /// A slide-model epoch (a row of a run's curves.csv, or a live record of `nic train`) as point `epoch` of
    /// the plot (rounds one after the other on one axis).
    static EpochPoint fromRun(const RunCurvePoint& c, int epoch) {
        EpochPoint p;
        p.epoch = epoch;
        p.trainLoss = c.trainLoss;
        p.validationLoss = c.validationLoss;
        p.validationMetric = c.validationMetric;
        p.learningRate = c.learningRate;
        return p;
    }
};

/// Loss (train, validation) and the validation metric per epoch above, the learning rate (log scale)
/// below. appendEpoch() is a slot so that a job body can post it from the worker thread with
/// QMetaObject::invokeMethod(plot, ..., Qt::QueuedConnection).
class TrainingCurvesPlot : public PlotWidget {
    Q_OBJECT
public:
    explicit TrainingCurvesPlot(QWidget* parent = nullptr);

    /// Name of the validation metric in the legend and CSV header text ("validation AUC" by default).
    void setMetricName(const QString& name);
    QString metricName() const { return metricName_; }
    const QVector<EpochPoint>& epochs() const { return epochs_; }
    int epochCount() const { return static_cast<int>(epochs_.size()); }
    /// Header: epoch,train_loss,validation_loss,validation_metric,learning_rate (NaN → empty field).
    QString csv() const override;

public Q_SLOTS:
    void appendEpoch(int epoch, double trainLoss, double validationLoss, double validationMetric, double learningRate);
    void appendPoint(const nic::EpochPoint& point);
    void clear();

private:
    void rebuild();
    QVector<EpochPoint> epochs_;
    QString metricName_;
    QCPAxisRect* lrRect_;
};

/// ROC curves (one per fold, or the pooled one) with the AUC in the legend and the chance diagonal.
class RocPlot : public PlotWidget {
    Q_OBJECT
public:
    explicit RocPlot(QWidget* parent = nullptr);

    /// Adds a curve; `fpr` and `tpr` are in drawing order (same length). Legend: "<label> (AUC 0.912)",
    /// or "(AUC n/a)" for NaN.
    void addCurve(const QString& label, const QVector<double>& fpr, const QVector<double>& tpr, double auc);
    void addCurve(const QString& label, const RocCurve& curve);
    void clear();
    int curveCount() const { return static_cast<int>(curves_.size()); }
    QStringList legendLabels() const;
    /// Header: curve,auc,fpr,tpr; one row per point.
    QString csv() const override;

private:
    struct Curve {
        QString label;
        QVector<double> fpr;
        QVector<double> tpr;
        double auc;
    };
    void rebuild();
    QVector<Curve> curves_;
};

/// Predicted against true values (regression) with the y = x line; the title gives Spearman's ρ.
class ScatterPlot : public PlotWidget {
    Q_OBJECT
public:
    explicit ScatterPlot(QWidget* parent = nullptr);

    /// `ids` (optional, same length) name the points in the CSV. Sizes that differ keep the common prefix.
    void setData(const QVector<double>& truth, const QVector<double>& predicted, const QStringList& ids = {});
    void setAxisLabels(const QString& truthLabel, const QString& predictedLabel);
    /// Spearman's ρ of the data (NaN when undefined: fewer than 2 points or a constant vector).
    double spearman() const { return spearman_; }
    int pointCount() const { return static_cast<int>(truth_.size()); }
    /// Header: slide,true,predicted.
    QString csv() const override;

private:
    QVector<double> truth_;
    QVector<double> predicted_;
    QStringList ids_;
    double spearman_;
};

/// One encoder's patch-level accuracy per class (0..1, NaN when not measured).
struct EncoderAccuracy {
    QString encoder;
    QVector<double> accuracy;
};

/// Grouped bars: one group per class, one bar per encoder (the paper's Table 1 as a chart).
class EncoderComparisonChart : public PlotWidget {
    Q_OBJECT
public:
    explicit EncoderComparisonChart(QWidget* parent = nullptr);

    /// Each encoder's `accuracy` has one value per class (missing values count as NaN and are not drawn).
    void setData(const QStringList& classes, const QVector<EncoderAccuracy>& encoders);
    QStringList classes() const { return classes_; }
    int encoderCount() const { return static_cast<int>(encoders_.size()); }
    /// Header: encoder,<class 1>,…,<class n>; one row per encoder.
    QString csv() const override;

private:
    QStringList classes_;
    QVector<EncoderAccuracy> encoders_;
};

/// RFC 4180 field quoting: a field with a comma, quote or line break is quoted, quotes doubled.
QString csvField(const QString& text);
/// A number for CSV: shortest round-trip form, NaN → "".
QString csvNumber(double value);

} // namespace nic

Q_DECLARE_METATYPE(nic::EpochPoint)
