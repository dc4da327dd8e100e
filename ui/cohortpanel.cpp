#include "ui/cohortpanel.h"

#include "core/slidelearning/cohort.h"
#include "core/compression/compressor.h"
#include "core/base/csv.h"
#include "core/base/error.h"

#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSortFilterProxyModel>
#include <QTableView>
#include <QVBoxLayout>

#include <map>

namespace nic {

namespace {

QString formatNumber(double v) {
    return QString::number(v, 'g', 4);
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// CohortModel

CohortModel::CohortModel(QObject* parent) : QAbstractTableModel(parent) {}

bool CohortModel::loadCohort(const QString& csv, QString* error) {
    Cohort cohort;
    try {
        cohort = readCohort(csv.toStdString());
    } catch (const std::exception& e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
    beginResetModel();
    rows_.clear();
    for (const CohortEntry& e : cohort.entries) {
        Row r;
        r.slide = QString::fromStdString(e.slide.string());
        r.label = QString::fromStdString(e.label);
        r.fold = e.fold;
        r.score = e.score;
        rows_.append(r);
    }
    cohortFile_ = csv;
    endResetModel();
    refreshCompression();
    return true;
}

void CohortModel::setGridsDir(const QString& dir) {
    gridsDir_ = dir;
    refreshCompression();
}

void CohortModel::refreshCompression() {
    for (Row& r : rows_) {
        if (gridsDir_.isEmpty()) {
            r.compressed.clear();
            continue;
        }
        const auto out = compressedPathFor(r.slide.toStdString(), gridsDir_.toStdString());
        std::error_code ec;
        if (std::filesystem::is_regular_file(out, ec))
            r.compressed = QStringLiteral("yes");
        else if (std::filesystem::is_regular_file(partialPathFor(out), ec))
            r.compressed = QStringLiteral("partial");
        else
            r.compressed = QStringLiteral("no");
    }
    if (!rows_.isEmpty())
        Q_EMIT dataChanged(index(0, CompressedColumn), index(rowCount() - 1, CompressedColumn));
}

bool CohortModel::loadPredictions(const QString& csv, QString* error, int* matched) {
    auto failWith = [&](const QString& cause) {
        if (error)
            *error = QStringLiteral("%1: %2").arg(csv, cause);
        return false;
    };
    std::map<QString, double> byKey;
    try {
        const CsvTable t = readCsvTable(csv.toStdString());
        int slideCol = -1;
        int predCol = -1;
        for (std::size_t i = 0; i < t.header.size(); ++i) {
            const QString h = QString::fromStdString(t.header[i]).trimmed().toLower();
            if (h == QLatin1String("slide"))
                slideCol = static_cast<int>(i);
            else if (h == QLatin1String("prediction"))
                predCol = static_cast<int>(i);
        }
        if (slideCol < 0 || predCol < 0)
            return failWith(QStringLiteral("needs the columns 'slide' and 'prediction'"));
        for (const CsvRecord& row : t.rows)
            byKey[QString::fromStdString(row.fields[static_cast<std::size_t>(slideCol)])] = t.number(row, predCol);
    } catch (const Error& e) {
        if (error)
            *error = QString::fromUtf8(e.what()); // names the file (and line) itself
        return false;
    }
    int count = 0;
    for (Row& r : rows_) {
        const QFileInfo info(r.slide);
        r.prediction.reset();
        for (const QString& key : {r.slide, info.fileName(), info.completeBaseName(), info.baseName()}) {
            const auto it = byKey.find(key);
            if (it != byKey.end()) {
                r.prediction = it->second;
                ++count;
                break;
            }
        }
    }
    if (matched)
        *matched = count;
    if (!rows_.isEmpty())
        Q_EMIT dataChanged(index(0, PredictionColumn), index(rowCount() - 1, PredictionColumn));
    return true;
}

int CohortModel::rowCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : static_cast<int>(rows_.size());
}

int CohortModel::columnCount(const QModelIndex& parent) const {
    return parent.isValid() ? 0 : ColumnCount;
}

QVariant CohortModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= rows_.size())
        return {};
    const Row& r = rows_[index.row()];
    if (role == PathRole)
        return r.slide;
    if (role == Qt::ToolTipRole && index.column() == SlideColumn)
        return r.slide;
    if (role == Qt::TextAlignmentRole && index.column() != SlideColumn)
        return int(Qt::AlignCenter);
    if (role != Qt::DisplayRole && role != SortRole)
        return {};
    const bool sort = role == SortRole;
    switch (index.column()) {
    case SlideColumn: return QFileInfo(r.slide).fileName();
    case LabelColumn: {
        bool ok = false;
        const double v = r.label.toDouble(&ok);
        return sort && ok ? QVariant(v) : QVariant(r.label);
    }
    case FoldColumn:
        if (!r.fold)
            return sort ? QVariant(-1) : QVariant(QString());
        return sort ? QVariant(*r.fold) : QVariant(QString::number(*r.fold));
    case ScoreColumn:
        if (!r.score)
            return sort ? QVariant(-1e300) : QVariant(QString());
        return sort ? QVariant(*r.score) : QVariant(formatNumber(*r.score));
    case CompressedColumn: return r.compressed;
    case PredictionColumn:
        if (!r.prediction)
            return sort ? QVariant(-1e300) : QVariant(QString());
        return sort ? QVariant(*r.prediction) : QVariant(formatNumber(*r.prediction));
    default: return {};
    }
}

QVariant CohortModel::headerData(int section, Qt::Orientation orientation, int role) const {
    if (orientation != Qt::Horizontal || role != Qt::DisplayRole)
        return QAbstractTableModel::headerData(section, orientation, role);
    switch (section) {
    case SlideColumn: return tr("Slide");
    case LabelColumn: return tr("Label");
    case FoldColumn: return tr("Fold");
    case ScoreColumn: return tr("Score");
    case CompressedColumn: return tr("Compressed");
    case PredictionColumn: return tr("Prediction");
    default: return {};
    }
}

// ---------------------------------------------------------------------------------------------------------
// CohortPanel

CohortPanel::CohortPanel(QWidget* parent)
    : QWidget(parent), model_(new CohortModel(this)), proxy_(new QSortFilterProxyModel(this)), view_(new QTableView(this)),
      filter_(new QLineEdit(this)), status_(new QLabel(this)) {
    setObjectName(QStringLiteral("cohortPanel"));
    proxy_->setSourceModel(model_);
    proxy_->setSortRole(CohortModel::SortRole);
    proxy_->setFilterKeyColumn(-1);
    proxy_->setFilterCaseSensitivity(Qt::CaseInsensitive);
    view_->setModel(proxy_);
    view_->setSortingEnabled(true);
    view_->sortByColumn(CohortModel::SlideColumn, Qt::AscendingOrder);
    view_->setSelectionBehavior(QAbstractItemView::SelectRows);
    view_->setSelectionMode(QAbstractItemView::ExtendedSelection);
    view_->setEditTriggers(QAbstractItemView::NoEditTriggers);
    view_->verticalHeader()->setVisible(false);
    view_->horizontalHeader()->setSectionResizeMode(CohortModel::SlideColumn, QHeaderView::Stretch);
    view_->setAlternatingRowColors(true);
    filter_->setPlaceholderText(tr("Filter (slide, label, fold, status…)"));
    filter_->setClearButtonEnabled(true);
    status_->setWordWrap(true);

    auto* open = new QPushButton(tr("Open cohort…"), this);
    auto* grids = new QPushButton(tr("Grids folder…"), this);
    auto* preds = new QPushButton(tr("Load predictions…"), this);
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(open);
    buttons->addWidget(grids);
    buttons->addWidget(preds);
    buttons->addStretch(1);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    layout->addLayout(buttons);
    layout->addWidget(filter_);
    layout->addWidget(view_, 1);
    layout->addWidget(status_);

    connect(open, &QPushButton::clicked, this, &CohortPanel::chooseCohort);
    connect(grids, &QPushButton::clicked, this, &CohortPanel::chooseGridsDir);
    connect(preds, &QPushButton::clicked, this, &CohortPanel::choosePredictions);
    connect(filter_, &QLineEdit::textChanged, this, &CohortPanel::setFilterText);
    connect(view_, &QTableView::doubleClicked, this, [this](const QModelIndex& index) {
        const QString path = proxy_->data(index, CohortModel::PathRole).toString();
        if (!path.isEmpty())
            Q_EMIT openSlide(path);
    });
    updateStatus();
}

bool CohortPanel::openCohort(const QString& csv, QString* error) {
    QString message;
    if (!model_->loadCohort(csv, &message)) {
        showError(message);
        if (error)
            *error = message;
        return false;
    }
    updateStatus();
    Q_EMIT cohortLoaded(csv);
    return true;
}

void CohortPanel::setGridsDir(const QString& dir) {
    model_->setGridsDir(dir);
    updateStatus();
}

bool CohortPanel::loadPredictions(const QString& csv, QString* error) {
    QString message;
    int matched = 0;
    if (!model_->loadPredictions(csv, &message, &matched)) {
        showError(message);
        if (error)
            *error = message;
        return false;
    }
    updateStatus();
    return true;
}

void CohortPanel::setFilterText(const QString& text) {
    if (filter_->text() != text)
        filter_->setText(text); // re-enters through textChanged
    proxy_->setFilterFixedString(text);
    updateStatus();
}

QString CohortPanel::slideAt(int visibleRow) const {
    return proxy_->data(proxy_->index(visibleRow, 0), CohortModel::PathRole).toString();
}

void CohortPanel::showError(const QString& message) {
    status_->setStyleSheet(QStringLiteral("color: #c62828;"));
    status_->setText(message);
}

void CohortPanel::updateStatus() {
    status_->setStyleSheet(QString());
    const auto& rows = model_->rows();
    if (model_->cohortFile().isEmpty()) {
        status_->setText(tr("No cohort loaded."));
        return;
    }
    int compressed = 0;
    int predicted = 0;
    for (const auto& r : rows) {
        compressed += r.compressed == QLatin1String("yes");
        predicted += r.prediction.has_value();
    }
    QString text = tr("%1 slides, %2 shown").arg(rows.size()).arg(proxy_->rowCount());
    if (!model_->gridsDir().isEmpty())
        text += tr(", %1 compressed").arg(compressed);
    if (predicted > 0)
        text += tr(", %1 with predictions").arg(predicted);
    status_->setText(text);
}

void CohortPanel::chooseCohort() {
    const QString f = QFileDialog::getOpenFileName(this, tr("Open cohort"), QString(), tr("Cohort CSV (*.csv);;All files (*)"));
    if (!f.isEmpty())
        openCohort(f);
}

void CohortPanel::chooseGridsDir() {
    const QString d = QFileDialog::getExistingDirectory(this, tr("Folder of compressed slides"), model_->gridsDir());
    if (!d.isEmpty())
        setGridsDir(d);
}

void CohortPanel::choosePredictions() {
    const QString f =
        QFileDialog::getOpenFileName(this, tr("Load predictions"), QString(), tr("Predictions CSV (*.csv);;All files (*)"));
    if (!f.isEmpty())
        loadPredictions(f);
}

} // namespace nic
