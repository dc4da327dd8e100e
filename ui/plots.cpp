#include "ui/plots.h"

#include "core/slidelearning/metrics.h"

#include <QContextMenuEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QLocale>
#include <QVBoxLayout>
#include <QMenu>
#include <QMessageBox>
#include <QPageLayout>
#include <QPageSize>
#include <QPdfWriter>
#include <QSaveFile>
#include <QSvgGenerator>

// qcustomplot.h spells Qt's keywords (`signals`, `slots`, `emit`, `foreach`), which the ui target
// switches off with QT_NO_KEYWORDS (PLATFORM_NOTES §1): map them to the macros for this header only.
#define signals Q_SIGNALS
#define slots Q_SLOTS
#define emit Q_EMIT
#define foreach Q_FOREACH
#include <qcustomplot.h>
#undef foreach
#undef emit
#undef slots
#undef signals

#include <algorithm>
#include <cmath>
#include <vector>

namespace nic {

namespace {
/// Replots a visible plot. A hidden one (e.g. in a tab never shown) may have a null paint buffer that
/// QPainter refuses; PlotWidget::showEvent replots it when it appears. Exports render on their own.
void replotIfShown(QCustomPlot* plot) {
    if (plot->isVisible())
        plot->replot();
}
} // namespace

namespace {

const QColor kPalette[] = {QColor(0x1f, 0x77, 0xb4), QColor(0xff, 0x7f, 0x0e), QColor(0x2c, 0xa0, 0x2c),
                           QColor(0xd6, 0x27, 0x28), QColor(0x94, 0x67, 0xbd), QColor(0x8c, 0x56, 0x4b),
                           QColor(0xe3, 0x77, 0xc2), QColor(0x7f, 0x7f, 0x7f), QColor(0xbc, 0xbd, 0x22),
                           QColor(0x17, 0xbe, 0xcf)};

QColor paletteColor(int i) {
    return kPalette[static_cast<std::size_t>(i) % std::size(kPalette)];
}

bool fail(QString* error, const QString& path, const QString& cause) {
    if (error)
        *error = QStringLiteral("cannot write %1: %2").arg(path, cause);
    return false;
}

/// Opens `file` for writing; false with the error set when it cannot.
bool openSaveFile(QSaveFile& file, QString* error) {
    if (file.open(QIODevice::WriteOnly))
        return true;
    return fail(error, file.fileName(), file.errorString());
}

bool commitSaveFile(QSaveFile& file, QString* error) {
    if (file.commit())
        return true;
    return fail(error, file.fileName(), file.errorString());
}

bool finite(double v) {
    return std::isfinite(v);
}

/// Range of the finite values in `values`, padded by 5 % (or ±0.5 for a single value); nullopt-like
/// {0, 1} when there are none.
QCPRange paddedRange(const std::vector<double>& values) {
    double lo = std::numeric_limits<double>::infinity();
    double hi = -lo;
    for (const double v : values)
        if (finite(v)) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    if (!(lo <= hi))
        return {0.0, 1.0};
    if (hi - lo < 1e-12)
        return {lo - 0.5, hi + 0.5};
    const double pad = 0.05 * (hi - lo);
    return {lo - pad, hi + pad};
}

void styleLegend(QCustomPlot* plot) {
    plot->legend->setVisible(true);
    plot->legend->setBrush(QColor(255, 255, 255, 220));
    plot->legend->setBorderPen(QPen(QColor(0xb0, 0xb0, 0xb0)));
    QFont font = plot->font();
    font.setPointSizeF(font.pointSizeF() * 0.9);
    plot->legend->setFont(font);
}

/// Moves the legend out of the axis rect into a row of its own under the title (row 1), entries side by
/// side, so that it never hides data.
void legendBelowTitle(QCustomPlot* plot) {
    styleLegend(plot);
    plot->axisRect()->insetLayout()->take(plot->legend);
    plot->plotLayout()->insertRow(1);
    plot->plotLayout()->addElement(1, 0, plot->legend);
    plot->legend->setFillOrder(QCPLegend::foColumnsFirst);
    plot->legend->setBorderPen(Qt::NoPen);
    plot->legend->setMargins(QMargins(4, 0, 4, 0));
    plot->plotLayout()->setRowStretchFactor(1, 0.001);
}

} // namespace

QString csvField(const QString& text) {
    if (!text.contains(QLatin1Char(',')) && !text.contains(QLatin1Char('"')) && !text.contains(QLatin1Char('\n')) &&
        !text.contains(QLatin1Char('\r')))
        return text;
    QString quoted = text;
    quoted.replace(QLatin1String("\""), QLatin1String("\"\""));
    return QLatin1Char('"') + quoted + QLatin1Char('"');
}

QString csvNumber(double value) {
    if (!finite(value))
        return {};
    return QString::number(value, 'g', QLocale::FloatingPointShortest);
}

// ---------------------------------------------------------------------------------------------------------
// PlotWidget

PlotWidget::PlotWidget(QWidget* parent) : QWidget(parent), plot_(new QCustomPlot(this)), title_(nullptr) {
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(plot_);
    // A 0 × 0 plot (squeezed by a dock) makes QCustomPlot's own resize-replot paint into a null buffer.
    plot_->setMinimumSize(160, 120);
    plot_->setContextMenuPolicy(Qt::NoContextMenu); // the widget's contextMenuEvent handles it
    plot_->plotLayout()->insertRow(0);
    QFont titleFont = font();
    titleFont.setPointSizeF(titleFont.pointSizeF() * 1.15);
    titleFont.setBold(true);
    title_ = new QCPTextElement(plot_, QString(), titleFont);
    plot_->plotLayout()->addElement(0, 0, title_);
    plot_->setBackground(Qt::white);
}

void PlotWidget::showEvent(QShowEvent* event) {
    QWidget::showEvent(event);
    plot_->replot(QCustomPlot::rpQueuedReplot); // data may have changed while hidden
}

QString PlotWidget::title() const {
    return title_->text();
}

void PlotWidget::setTitle(const QString& title) {
    title_->setText(title);
    replotIfShown(plot_);
}

QSize PlotWidget::exportSize(QSize requested) const {
    if (requested.isValid() && !requested.isEmpty())
        return requested;
    if (isVisible() && plot_->width() > 0 && plot_->height() > 0)
        return plot_->size();
    return {800, 500};
}

bool PlotWidget::exportPng(const QString& path, QString* error, QSize size) {
    const QSize s = exportSize(size);
    const QPixmap pixmap = plot_->toPixmap(s.width(), s.height());
    if (pixmap.isNull())
        return fail(error, path, QStringLiteral("the plot could not be rendered"));
    QSaveFile file(path);
    if (!openSaveFile(file, error))
        return false;
    if (!pixmap.save(&file, "PNG")) {
        file.cancelWriting();
        return fail(error, path, file.errorString().isEmpty() ? QStringLiteral("PNG encoding failed") : file.errorString());
    }
    return commitSaveFile(file, error);
}

bool PlotWidget::exportPdf(const QString& path, QString* error, QSize size) {
    const QSize s = exportSize(size);
    QSaveFile file(path);
    if (!openSaveFile(file, error))
        return false;
    {
        QPdfWriter writer(&file);
        writer.setCreator(QStringLiteral("NIC Studio"));
        writer.setTitle(title());
        writer.setResolution(72); // one device unit = one point = one plot pixel
        writer.setPageLayout(QPageLayout(QPageSize(QSizeF(s), QPageSize::Point, QString(), QPageSize::ExactMatch),
                                         QPageLayout::Portrait, QMarginsF(0, 0, 0, 0)));
        QCPPainter painter;
        if (!painter.begin(&writer)) {
            file.cancelWriting();
            return fail(error, path, QStringLiteral("the PDF writer could not start"));
        }
        painter.setMode(QCPPainter::pmNonCosmetic);
        plot_->toPainter(&painter, s.width(), s.height());
        painter.end();
    }
    return commitSaveFile(file, error);
}

bool PlotWidget::exportSvg(const QString& path, QString* error, QSize size) {
    const QSize s = exportSize(size);
    QSaveFile file(path);
    if (!openSaveFile(file, error))
        return false;
    {
        QSvgGenerator generator;
        generator.setOutputDevice(&file);
        generator.setSize(s);
        generator.setResolution(96); // the text/line proportions of the PNG export (the default is 72)
        generator.setViewBox(QRect(QPoint(0, 0), s));
        generator.setTitle(title());
        generator.setDescription(QStringLiteral("NIC Studio"));
        QCPPainter painter;
        if (!painter.begin(&generator)) {
            file.cancelWriting();
            return fail(error, path, QStringLiteral("the SVG generator could not start"));
        }
        plot_->toPainter(&painter, s.width(), s.height());
        painter.end();
    }
    return commitSaveFile(file, error);
}

bool PlotWidget::exportCsv(const QString& path, QString* error) const {
    QSaveFile file(path);
    if (!openSaveFile(file, error))
        return false;
    const QByteArray bytes = csv().toUtf8();
    if (file.write(bytes) != bytes.size()) {
        file.cancelWriting();
        return fail(error, path, file.errorString());
    }
    return commitSaveFile(file, error);
}

bool PlotWidget::exportTo(const QString& path, QString* error, QSize size) {
    const QString ext = QFileInfo(path).suffix().toLower();
    if (ext == QLatin1String("png"))
        return exportPng(path, error, size);
    if (ext == QLatin1String("pdf"))
        return exportPdf(path, error, size);
    if (ext == QLatin1String("svg"))
        return exportSvg(path, error, size);
    if (ext == QLatin1String("csv"))
        return exportCsv(path, error);
    if (error)
        *error = QStringLiteral("unsupported export format '%1' (use .png, .pdf, .svg or .csv)").arg(ext);
    return false;
}

void PlotWidget::exportDialog() {
    QString selected;
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export plot"), QString(),
        tr("PNG image (*.png);;PDF document (*.pdf);;SVG drawing (*.svg);;CSV data (*.csv)"), &selected);
    if (path.isEmpty())
        return;
    QString target = path;
    if (QFileInfo(path).suffix().isEmpty()) { // "name" typed with a filter chosen: take the filter's extension
        const auto star = selected.indexOf(QLatin1String("(*."));
        if (star >= 0)
            target += selected.mid(star + 2, 4);
    }
    QString error;
    if (!exportTo(target, &error))
        QMessageBox::warning(this, tr("Export failed"), error);
}

void PlotWidget::contextMenuEvent(QContextMenuEvent* event) {
    QMenu menu(this);
    menu.addAction(tr("Export…"), this, &PlotWidget::exportDialog);
    menu.exec(event->globalPos());
}

// ---------------------------------------------------------------------------------------------------------
// TrainingCurvesPlot

TrainingCurvesPlot::TrainingCurvesPlot(QWidget* parent)
    : PlotWidget(parent), metricName_(tr("validation AUC")), lrRect_(new QCPAxisRect(plot_)) {
    setObjectName(QStringLiteral("trainingCurvesPlot"));
    setTitle(tr("Training curves"));
    QCPAxisRect* main = plot_->axisRect(0);
    plot_->plotLayout()->addElement(2, 0, lrRect_);
    auto* group = new QCPMarginGroup(plot_);
    main->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    lrRect_->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    lrRect_->axis(QCPAxis::atRight)->setVisible(true);
    lrRect_->axis(QCPAxis::atRight)->setTickLabels(false);
    lrRect_->axis(QCPAxis::atRight)->setTicks(false);

    plot_->xAxis->setLabel(QString());
    plot_->yAxis->setLabel(tr("loss"));
    plot_->yAxis2->setVisible(true);
    plot_->yAxis2->setLabel(metricName_);
    QCPAxis* lrX = lrRect_->axis(QCPAxis::atBottom);
    QCPAxis* lrY = lrRect_->axis(QCPAxis::atLeft);
    lrX->setLabel(tr("epoch"));
    lrY->setLabel(tr("learning rate"));
    lrY->setScaleType(QCPAxis::stLogarithmic);
    lrY->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    lrY->setNumberFormat(QStringLiteral("eb"));
    lrY->setNumberPrecision(0);
    connect(plot_->xAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), lrX, qOverload<const QCPRange&>(&QCPAxis::setRange));
    auto intTicker = QSharedPointer<QCPAxisTickerFixed>(new QCPAxisTickerFixed);
    intTicker->setTickStep(1.0);
    intTicker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
    plot_->xAxis->setTicker(intTicker);
    lrX->setTicker(intTicker);

    auto addGraph = [this](QCPAxis* x, QCPAxis* y, const QString& name, const QColor& color, Qt::PenStyle style) {
        QCPGraph* g = plot_->addGraph(x, y);
        g->setName(name);
        g->setPen(QPen(color, 2.0, style));
        g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
        return g;
    };
    addGraph(plot_->xAxis, plot_->yAxis, tr("training loss"), paletteColor(0), Qt::SolidLine);
    addGraph(plot_->xAxis, plot_->yAxis, tr("validation loss"), paletteColor(1), Qt::SolidLine);
    addGraph(plot_->xAxis, plot_->yAxis2, metricName_, paletteColor(2), Qt::DashLine);
    addGraph(lrX, lrY, tr("learning rate"), paletteColor(3), Qt::SolidLine)->setLineStyle(QCPGraph::lsStepLeft);
    // Live curves go anywhere in the axis rect, so the legend gets its own row under the title.
    legendBelowTitle(plot_);
    plot_->plotLayout()->setRowStretchFactor(2, 3.0);
    plot_->plotLayout()->setRowStretchFactor(3, 1.2);
    rebuild();
}

void TrainingCurvesPlot::setMetricName(const QString& name) {
    metricName_ = name;
    plot_->yAxis2->setLabel(name);
    plot_->graph(2)->setName(name);
    replotIfShown(plot_);
}

void TrainingCurvesPlot::appendEpoch(int epoch, double trainLoss, double validationLoss, double validationMetric,
                                     double learningRate) {
    appendPoint(EpochPoint{epoch, trainLoss, validationLoss, validationMetric, learningRate});
}

void TrainingCurvesPlot::appendPoint(const EpochPoint& point) {
    epochs_.append(point);
    rebuild();
}

void TrainingCurvesPlot::clear() {
    epochs_.clear();
    rebuild();
}

void TrainingCurvesPlot::rebuild() {
    QVector<double> keys[4];
    QVector<double> values[4];
    std::vector<double> losses;
    std::vector<double> metrics;
    std::vector<double> rates;
    int lastEpoch = 1;
    for (const EpochPoint& p : epochs_) {
        const double v[4] = {p.trainLoss, p.validationLoss, p.validationMetric, p.learningRate};
        for (int i = 0; i < 4; ++i)
            if (finite(v[i]) && (i != 3 || v[i] > 0.0)) {
                keys[i].append(p.epoch);
                values[i].append(v[i]);
            }
        losses.push_back(p.trainLoss);
        losses.push_back(p.validationLoss);
        metrics.push_back(p.validationMetric);
        if (finite(p.learningRate) && p.learningRate > 0.0)
            rates.push_back(p.learningRate);
        lastEpoch = std::max(lastEpoch, p.epoch);
    }
    for (int i = 0; i < 4; ++i)
        plot_->graph(i)->setData(keys[i], values[i], true);
    plot_->xAxis->setRange(0.5, lastEpoch + 0.5);
    plot_->yAxis->setRange(paddedRange(losses));
    // Metrics in [0, 1] (AUC, accuracy) get a fixed axis so that live updates don't make it jump.
    const QCPRange metricRange = paddedRange(metrics);
    if (metricRange.lower >= -0.05 && metricRange.upper <= 1.05)
        plot_->yAxis2->setRange(0.0, 1.0);
    else
        plot_->yAxis2->setRange(metricRange);
    QCPAxis* lrY = lrRect_->axis(QCPAxis::atLeft);
    if (rates.empty()) {
        lrY->setRange(1e-5, 1e-1);
    } else {
        const auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
        lrY->setRange(*lo / 3.0, *hi * 3.0);
    }
    replotIfShown(plot_);
}

QString TrainingCurvesPlot::csv() const {
    QString out = QStringLiteral("epoch,train_loss,validation_loss,validation_metric,learning_rate\n");
    for (const EpochPoint& p : epochs_)
        out += QStringLiteral("%1,%2,%3,%4,%5\n")
                   .arg(p.epoch)
                   .arg(csvNumber(p.trainLoss), csvNumber(p.validationLoss), csvNumber(p.validationMetric),
                        csvNumber(p.learningRate));
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// RocPlot

RocPlot::RocPlot(QWidget* parent) : PlotWidget(parent) {
    setObjectName(QStringLiteral("rocPlot"));
    setTitle(tr("ROC"));
    plot_->xAxis->setLabel(tr("false positive rate"));
    plot_->yAxis->setLabel(tr("true positive rate"));
    plot_->xAxis->setRange(-0.01, 1.01);
    plot_->yAxis->setRange(-0.01, 1.01);
    styleLegend(plot_);
    plot_->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignBottom | Qt::AlignRight);
    rebuild();
}

void RocPlot::addCurve(const QString& label, const QVector<double>& fpr, const QVector<double>& tpr, double auc) {
    Curve c{label, fpr, tpr, auc};
    const auto n = std::min(c.fpr.size(), c.tpr.size());
    c.fpr.resize(n);
    c.tpr.resize(n);
    curves_.append(std::move(c));
    rebuild();
}

void RocPlot::addCurve(const QString& label, const RocCurve& curve) {
    QVector<double> fpr;
    QVector<double> tpr;
    for (const RocPoint& p : curve.points) {
        fpr.append(p.fpr);
        tpr.append(p.tpr);
    }
    addCurve(label, fpr, tpr, curve.auc);
}

void RocPlot::clear() {
    curves_.clear();
    rebuild();
}

QStringList RocPlot::legendLabels() const {
    QStringList labels;
    for (const Curve& c : curves_)
        labels << (finite(c.auc) ? QStringLiteral("%1 (AUC %2)").arg(c.label, QString::number(c.auc, 'f', 3))
                                 : QStringLiteral("%1 (AUC n/a)").arg(c.label));
    return labels;
}

void RocPlot::rebuild() {
    plot_->clearPlottables();
    const QStringList labels = legendLabels();
    for (int i = 0; i < curves_.size(); ++i) {
        auto* curve = new QCPCurve(plot_->xAxis, plot_->yAxis);
        curve->setData(curves_[i].fpr, curves_[i].tpr);
        curve->setName(labels[i]);
        curve->setPen(QPen(paletteColor(i), 2.0));
    }
    auto* chance = new QCPCurve(plot_->xAxis, plot_->yAxis);
    chance->setData(QVector<double>{0.0, 1.0}, QVector<double>{0.0, 1.0});
    chance->setPen(QPen(QColor(0x90, 0x90, 0x90), 1.0, Qt::DashLine));
    chance->removeFromLegend();
    replotIfShown(plot_);
}

QString RocPlot::csv() const {
    QString out = QStringLiteral("curve,auc,fpr,tpr\n");
    for (const Curve& c : curves_)
        for (int i = 0; i < c.fpr.size(); ++i)
            out += QStringLiteral("%1,%2,%3,%4\n").arg(csvField(c.label), csvNumber(c.auc), csvNumber(c.fpr[i]), csvNumber(c.tpr[i]));
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// ScatterPlot

ScatterPlot::ScatterPlot(QWidget* parent) : PlotWidget(parent), spearman_(std::numeric_limits<double>::quiet_NaN()) {
    setObjectName(QStringLiteral("scatterPlot"));
    setAxisLabels(tr("true"), tr("predicted"));
    setData({}, {});
}

void ScatterPlot::setAxisLabels(const QString& truthLabel, const QString& predictedLabel) {
    plot_->xAxis->setLabel(truthLabel);
    plot_->yAxis->setLabel(predictedLabel);
    replotIfShown(plot_);
}

void ScatterPlot::setData(const QVector<double>& truth, const QVector<double>& predicted, const QStringList& ids) {
    const auto n = std::min(truth.size(), predicted.size());
    truth_ = truth.mid(0, n);
    predicted_ = predicted.mid(0, n);
    ids_ = ids.mid(0, n);
    spearman_ = std::numeric_limits<double>::quiet_NaN();
    if (n >= 2) {
        try {
            spearman_ = nic::spearman(std::vector<double>(truth_.begin(), truth_.end()),
                                      std::vector<double>(predicted_.begin(), predicted_.end()));
        } catch (const std::exception&) {
            // NaN in the data: the title says n/a
        }
    }
    plot_->clearPlottables();
    std::vector<double> all(truth_.begin(), truth_.end());
    all.insert(all.end(), predicted_.begin(), predicted_.end());
    const QCPRange range = paddedRange(all);
    auto* identity = new QCPCurve(plot_->xAxis, plot_->yAxis);
    identity->setData(QVector<double>{range.lower, range.upper}, QVector<double>{range.lower, range.upper});
    identity->setPen(QPen(QColor(0x90, 0x90, 0x90), 1.0, Qt::DashLine));
    QCPGraph* points = plot_->addGraph();
    points->setLineStyle(QCPGraph::lsNone);
    points->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, QColor(paletteColor(0)), 7));
    // QCPGraph sorts by key, which is fine for a scatter.
    points->setData(truth_, predicted_);
    plot_->xAxis->setRange(range);
    plot_->yAxis->setRange(range);
    setTitle(finite(spearman_) ? tr("Predicted vs true — Spearman ρ = %1 (n = %2)").arg(QString::number(spearman_, 'f', 3)).arg(n)
                               : tr("Predicted vs true — Spearman ρ n/a (n = %1)").arg(n));
}

QString ScatterPlot::csv() const {
    QString out = QStringLiteral("slide,true,predicted\n");
    for (int i = 0; i < truth_.size(); ++i)
        out += QStringLiteral("%1,%2,%3\n").arg(csvField(i < ids_.size() ? ids_[i] : QString::number(i + 1)),
                                               csvNumber(truth_[i]), csvNumber(predicted_[i]));
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// EncoderComparisonChart

EncoderComparisonChart::EncoderComparisonChart(QWidget* parent) : PlotWidget(parent) {
    setObjectName(QStringLiteral("encoderComparisonChart"));
    setTitle(tr("Patch-level accuracy per class"));
    plot_->yAxis->setLabel(tr("accuracy"));
    plot_->yAxis->setRange(0.0, 1.05);
    plot_->xAxis->setTickLength(0, 0);
    plot_->xAxis->grid()->setVisible(false);
    legendBelowTitle(plot_);
    setData({}, {});
}

void EncoderComparisonChart::setData(const QStringList& classes, const QVector<EncoderAccuracy>& encoders) {
    classes_ = classes;
    encoders_ = encoders;
    for (EncoderAccuracy& e : encoders_)
        e.accuracy.resize(classes_.size(), std::numeric_limits<double>::quiet_NaN());
    plot_->clearPlottables();
    auto ticker = QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText);
    for (int c = 0; c < classes_.size(); ++c)
        ticker->addTick(c + 1, classes_[c]);
    plot_->xAxis->setTicker(ticker);
    plot_->xAxis->setRange(0.4, std::max<qsizetype>(1, classes_.size()) + 0.6);
    if (!encoders_.isEmpty()) {
        auto* group = new QCPBarsGroup(plot_);
        group->setSpacingType(QCPBarsGroup::stAbsolute);
        group->setSpacing(2);
        const double width = 0.8 / static_cast<double>(encoders_.size());
        for (int e = 0; e < encoders_.size(); ++e) {
            auto* bars = new QCPBars(plot_->xAxis, plot_->yAxis);
            bars->setName(encoders_[e].encoder);
            bars->setWidth(width);
            bars->setPen(QPen(paletteColor(e).darker(130)));
            bars->setBrush(paletteColor(e));
            bars->setBarsGroup(group);
            QVector<double> keys;
            QVector<double> values;
            for (int c = 0; c < classes_.size(); ++c)
                if (finite(encoders_[e].accuracy[c])) {
                    keys.append(c + 1);
                    values.append(encoders_[e].accuracy[c]);
                }
            bars->setData(keys, values, true);
        }
    }
    replotIfShown(plot_);
}

QString EncoderComparisonChart::csv() const {
    QString out = QStringLiteral("encoder");
    for (const QString& c : classes_)
        out += QLatin1Char(',') + csvField(c);
    out += QLatin1Char('\n');
    for (const EncoderAccuracy& e : encoders_) {
        out += csvField(e.encoder);
        for (const double a : e.accuracy)
            out += QLatin1Char(',') + csvNumber(a);
        out += QLatin1Char('\n');
    }
    return out;
}

} // namespace nic
