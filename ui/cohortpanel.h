#pragma once
// The cohort panel: the slides of a cohort CSV (core/slidelearning/cohort.h) with their label, fold, compression
// status (does <grids>/<stem>.h5 exist) and prediction (from a predictions CSV), filterable and
// sortable; double-click asks to open the slide.
#include <QAbstractTableModel>
#include <QString>
#include <QStringList>
#include <QVector>
#include <QWidget>

#include <optional>

class QLabel;
class QLineEdit;
class QSortFilterProxyModel;
class QTableView;

namespace nic {

/// Table model of a cohort. Columns: slide (file name; the full path in the tooltip and PathRole),
/// label, fold, score, compressed, prediction.
class CohortModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { SlideColumn, LabelColumn, FoldColumn, ScoreColumn, CompressedColumn, PredictionColumn, ColumnCount };
    enum Role { PathRole = Qt::UserRole + 1, SortRole };

    struct Row {
        QString slide;                 ///< absolute (or as resolved by core/cohort)
        QString label;
        std::optional<int> fold;
        std::optional<double> score;
        QString compressed;            ///< "yes", "partial", "no", or "" without a grids folder
        std::optional<double> prediction;
    };

    explicit CohortModel(QObject* parent = nullptr);

    /// Reads `csv` with nic::readCohort. On failure returns false, sets `error` to the parser's message
    /// (which names the file and line) and keeps the current rows.
    bool loadCohort(const QString& csv, QString* error = nullptr);
    /// Folder of compressed slides; "" clears the status column. Status is recomputed.
    void setGridsDir(const QString& dir);
    QString gridsDir() const { return gridsDir_; }
    /// Re-checks which compressed files exist.
    void refreshCompression();
    /// Reads a predictions CSV with columns `slide` and `prediction` (others ignored, e.g. nic train's
    /// slide,label,prediction,round). A slide matches a row by full path, file name or file stem.
    /// Returns false with `error` set ("<file>: <cause>") on failure; returns the number of matched rows
    /// in `matched`.
    bool loadPredictions(const QString& csv, QString* error = nullptr, int* matched = nullptr);

    QString cohortFile() const { return cohortFile_; }
    const QVector<Row>& rows() const { return rows_; }

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QVariant headerData(int section, Qt::Orientation orientation, int role = Qt::DisplayRole) const override;

private:
    QVector<Row> rows_;
    QString cohortFile_;
    QString gridsDir_;
};

/// The panel: buttons (Open cohort…, Grids folder…, Load predictions…), a filter box, the table and a
/// status line (counts, or the last error).
class CohortPanel : public QWidget {
    Q_OBJECT
public:
    explicit CohortPanel(QWidget* parent = nullptr);

    bool openCohort(const QString& csv, QString* error = nullptr);
    void setGridsDir(const QString& dir);
    bool loadPredictions(const QString& csv, QString* error = nullptr);
    /// Shows rows whose slide, label, fold, status or prediction contains `text` (case-insensitive).
    void setFilterText(const QString& text);

    CohortModel* model() const { return model_; }
    QSortFilterProxyModel* proxy() const { return proxy_; }
    QTableView* view() const { return view_; }
    QLineEdit* filterEdit() const { return filter_; }
    QLabel* statusLabel() const { return status_; }
    /// The slide path of a visible (proxy) row.
    QString slideAt(int visibleRow) const;

Q_SIGNALS:
    void openSlide(const QString& path);
    void cohortLoaded(const QString& csv);

private:
    void chooseCohort();
    void chooseGridsDir();
    void choosePredictions();
    void showError(const QString& message);
    void updateStatus();

    CohortModel* model_;
    QSortFilterProxyModel* proxy_;
    QTableView* view_;
    QLineEdit* filter_;
    QLabel* status_;
};

} // namespace nic
