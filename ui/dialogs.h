#pragma once
// Dialogs that collect the options of a job: compress, train encoder, train slide model, Grad-CAM.
// Each one validates its inputs while the user types (the first problem is shown inline and OK is
// disabled), remembers the accepted values in QSettings ("dialogs/<name>/…") and exposes a plain
// Options struct. They create no jobs: the caller maps options() to a core/ call.
// Each Options struct has a static validate() returning the first problem as a sentence ("" = fine),
// so that callers and tests can check options without a dialog.
#include "core/cluster/slurm.h"

#include <QDialog>
#include <QList>
#include <QPair>
#include <QString>
#include <QStringList>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QToolButton;

namespace nic {

/// Where a job runs: on this computer, or as Slurm jobs submitted through `nic submit` (docs/cluster.md),
/// which the Jobs dock then follows through the output folder (ui/clusterjobs.h).
struct RunOn {
    bool cluster = false;
    SlurmOptions slurm; ///< partition, time limit, CPUs, memory, account; empty: the cluster's defaults
    bool operator==(const RunOn&) const = default;
    /// The first problem with the Slurm fields ("" = fine): time limit and memory in Slurm's formats.
    static QString validate(const RunOn& r);
};

/// True when Slurm's `sbatch` is on PATH: the Compress, Train slide model and Grad-CAM dialogs then offer
/// "Run on: Slurm cluster".
bool slurmAvailable();

/// A line edit with a "…" button that opens a file or folder chooser.
class PathEdit : public QWidget {
    Q_OBJECT
public:
    enum class Mode { OpenFile, SaveFile, Directory };
    PathEdit(Mode mode, const QString& filter = {}, QWidget* parent = nullptr);
    QString path() const;
    void setPath(const QString& path);
    QLineEdit* lineEdit() const { return edit_; }

Q_SIGNALS:
    void pathChanged(const QString& path);

private:
    void browse();
    Mode mode_;
    QString filter_;
    QLineEdit* edit_;
    QToolButton* button_;
};

/// Base of the option dialogs: form, inline error label, OK/Cancel. accept() refuses invalid input.
class OptionsDialog : public QDialog {
    Q_OBJECT
public:
    /// The first problem with the current input, "" when it is valid.
    virtual QString validationError() const = 0;
    QLabel* errorLabel() const { return error_; }
    QPushButton* okButton() const { return ok_; }
    /// The "Run on" choice; nullptr when the dialog has none (no sbatch on PATH, or a local-only job).
    QComboBox* runOnCombo() const { return runOn_; }

public Q_SLOTS:
    /// Validates; when valid saves the values to QSettings and closes with Accepted.
    void accept() override;
    /// Updates the inline error and the OK button.
    void revalidate();

protected:
    OptionsDialog(const QString& title, const QString& settingsGroup, QWidget* parent);
    /// Calls revalidate() whenever `widget` (line edit, spin box, combo, check box, PathEdit, text) changes.
    void watch(QWidget* widget);
    /// watch()es `widget` and remembers its value under "dialogs/<group>/<key>": saved by accept(),
    /// put back by restoreSettings().
    void remember(const QString& key, QWidget* widget);
    /// Puts the remembered values back (keys never saved keep the widget's value); call at the end of
    /// a derived constructor, after setting the defaults.
    void restoreSettings();
    /// A form row `label` → `widget` whose value is remember()ed under `key`.
    void addField(const QString& label, QWidget* widget, const QString& key);
    /// Adds "Run on: this computer | Slurm cluster" and the Slurm rows (shown only for the cluster) when
    /// slurmAvailable(); nothing otherwise.
    void addRunOnFields();
    /// The chosen place to run ({} without the fields).
    RunOn runOn() const;
    void setRunOn(const RunOn& r);

    QFormLayout* form_;

private:
    static QVariant widgetValue(const QWidget* widget);
    static void setWidgetValue(QWidget* widget, const QVariant& value);
    QString group_;
    QList<QPair<QString, QWidget*>> remembered_;
    QLabel* error_;
    QPushButton* ok_;
    QComboBox* runOn_ = nullptr;
    QLineEdit* partition_ = nullptr;
    QLineEdit* time_ = nullptr;
    QSpinBox* cpus_ = nullptr;
    QLineEdit* memory_ = nullptr;
    QLineEdit* account_ = nullptr;
};

/// Compress slides into latent grids (`nic compress`).
class CompressDialog : public OptionsDialog {
    Q_OBJECT
public:
    struct Options {
        QStringList slides;
        QString encoder = QStringLiteral("mean-rgb"); ///< a builtin name or an encoder file
        int patchSize = 128;       ///< P (builtin encoders; a file encoder has its own)
        int stride = 128;          ///< S in target pixels
        double targetMpp = 0.0;    ///< µm/px, 0 = the encoder's
        int augment = 8;           ///< 8 (all dihedral variants, the paper) or 1
        QString outputDir;
        RunOn runOn;
        bool operator==(const Options&) const = default;
        static QString validate(const Options& o);
    };
    static QStringList builtinEncoders() { return {QStringLiteral("mean-rgb")}; }

    explicit CompressDialog(QWidget* parent = nullptr);
    Options options() const;
    void setOptions(const Options& o);
    QString validationError() const override { return Options::validate(options()); }


private:
    void addSlides();
    QPlainTextEdit* slides_;
    QComboBox* encoder_;
    QSpinBox* patch_;
    QSpinBox* stride_;
    QDoubleSpinBox* mpp_;
    QComboBox* augment_;
    PathEdit* output_;
};

/// Train a patch encoder (`nic train-encoder`).
class TrainEncoderDialog : public OptionsDialog {
    Q_OBJECT
public:
    struct Options {
        QString method = QStringLiteral("vae"); ///< one of methods()
        QString patchSource;       ///< patch bank file or folder
        QString output;            ///< encoder file to write
        /// The budget (core/encoders/trainingbudget.h): training ends at the first of the learning-rate floor
        /// (all methods but BiGAN), `steps` steps, `epochs` epochs of `stepsPerEpoch` steps; 0 switches a
        /// cap off. The dialog's Budget field fills these from a preset (default, paper, demo).
        int epochs = 20;
        qint64 steps = 0;
        int stepsPerEpoch = 0;     ///< 0 = one pass over the patches
        double learningRate = 0.0; ///< 0 = the method's default
        int codeSize = 128;        ///< C
        bool operator==(const Options&) const = default;
        static QString validate(const Options& o);
    };
    /// "vae", "contrastive", "bigan", "supervised-tumor", "supervised-tissue".
    static QStringList methods();

    explicit TrainEncoderDialog(QWidget* parent = nullptr);
    Options options() const;
    void setOptions(const Options& o);
    QString validationError() const override { return Options::validate(options()); }


    /// The preset the budget fields match for the chosen method ("default", "paper", "demo"), or "custom".
    QString budgetPreset() const;

private:
    void applyBudgetPreset();
    void updateBudgetField();
    QComboBox* method_;
    PathEdit* source_;
    PathEdit* output_;
    QComboBox* budget_;
    QLabel* budgetNote_;
    QSpinBox* epochs_;
    QSpinBox* steps_;
    QSpinBox* stepsPerEpoch_;
    QDoubleSpinBox* lr_;
    QSpinBox* code_;
};

/// Train the slide-level CNN with cross-validation (`nic train`).
class TrainSlideModelDialog : public OptionsDialog {
    Q_OBJECT
public:
    struct Options {
        QString cohort;            ///< cohort CSV (core/slidelearning/cohort.h)
        QString gridsDir;          ///< folder of compressed slides (<stem>.h5)
        QString task = QStringLiteral("classification"); ///< or "regression"
        int folds = 4;
        int cropSize = 400;        ///< R
        int testCrops = 10;        ///< T
        int epochs = 50;
        /// The network head (`nic train --head`): "auto" (max to classify, avg to regress), "max", "avg" or
        /// "flatten" (the paper's dense head on the flattened map of an R × R crop).
        QString head = QStringLiteral("auto");
        QString outputDir;
        RunOn runOn;
        bool operator==(const Options&) const = default;
        /// Also parses the cohort (its error is reported as "Cohort: <cause>") and checks that there
        /// are at least as many slides as folds.
        static QString validate(const Options& o);
    };

    explicit TrainSlideModelDialog(QWidget* parent = nullptr);
    Options options() const;
    void setOptions(const Options& o);
    QString validationError() const override { return Options::validate(options()); }


private:
    PathEdit* cohort_;
    PathEdit* grids_;
    QComboBox* task_;
    QSpinBox* folds_;
    QSpinBox* crop_;
    QSpinBox* testCrops_;
    QSpinBox* epochs_;
    QComboBox* head_;
    PathEdit* output_;
};

/// Grad-CAM heatmaps of a slide model over compressed slides (`nic gradcam`).
class GradCamDialog : public OptionsDialog {
    Q_OBJECT
public:
    struct Options {
        /// A slide-model file, or a `nic train` run folder (each slide is then explained by the model of
        /// the round that held it out, as `nic gradcam` does).
        QString model;
        QStringList slides;        ///< compressed slides (.h5)
        int layer = 1;             ///< k: 0 (input) … the model's layer count
        QString outputDir;
        bool png = true;           ///< also <slide>_gradcam.png (overlay)
        bool tiff = true;          ///< also the ASAP <slide>_likelihood_map.tif
        RunOn runOn;
        bool operator==(const Options&) const = default;
        static QString validate(const Options& o);
    };

    explicit GradCamDialog(QWidget* parent = nullptr);
    Options options() const;
    void setOptions(const Options& o);
    QString validationError() const override { return Options::validate(options()); }


private:
    void addSlides();
    void chooseRunFolder();
    PathEdit* model_;
    QPlainTextEdit* slides_;
    QSpinBox* layer_;
    PathEdit* output_;
    QCheckBox* png_;
    QCheckBox* tiff_;
};

} // namespace nic
