#include "ui/dialogs.h"

#include "core/slidelearning/cohort.h"
#include "core/base/error.h"
#include "core/encoders/trainingbudget.h"
#include "core/slidelearning/runfolder.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpression>
#include <QSignalBlocker>
#include <QSettings>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

#include <algorithm>
#include <cmath>

namespace nic {

namespace {

/// "" when `dir` is an existing writable folder or can be created (its nearest existing ancestor is a
/// writable folder).
QString checkOutputDir(const QString& dir, const QString& what = QStringLiteral("Output folder")) {
    if (dir.trimmed().isEmpty())
        return QStringLiteral("Choose an output folder.");
    const QFileInfo info(dir);
    if (info.exists()) {
        if (!info.isDir())
            return QStringLiteral("%1 is a file: %2").arg(what, dir);
        if (!info.isWritable())
            return QStringLiteral("%1 is not writable: %2").arg(what, dir);
        return {};
    }
    QString ancestor = info.absoluteFilePath();
    while (!QFileInfo::exists(ancestor)) {
        const QString parent = QFileInfo(ancestor).absolutePath();
        if (parent == ancestor)
            break;
        ancestor = parent;
    }
    const QFileInfo a(ancestor);
    if (!a.isDir() || !a.isWritable())
        return QStringLiteral("%1 cannot be created: %2").arg(what, dir);
    return {};
}

QStringList nonEmptyLines(const QString& text) {
    QStringList out;
    for (const QString& line : text.split(QLatin1Char('\n'))) {
        const QString t = line.trimmed();
        if (!t.isEmpty())
            out << t;
    }
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------------------
// PathEdit

PathEdit::PathEdit(Mode mode, const QString& filter, QWidget* parent)
    : QWidget(parent), mode_(mode), filter_(filter), edit_(new QLineEdit(this)), button_(new QToolButton(this)) {
    auto* layout = new QHBoxLayout(this);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->addWidget(edit_, 1);
    layout->addWidget(button_);
    button_->setText(QStringLiteral("…"));
    button_->setToolTip(tr("Browse"));
    edit_->setClearButtonEnabled(true);
    setFocusProxy(edit_);
    connect(edit_, &QLineEdit::textChanged, this, &PathEdit::pathChanged);
    connect(button_, &QToolButton::clicked, this, &PathEdit::browse);
}

QString PathEdit::path() const {
    return edit_->text().trimmed();
}

void PathEdit::setPath(const QString& path) {
    edit_->setText(path);
}

void PathEdit::browse() {
    QString chosen;
    switch (mode_) {
    case Mode::OpenFile: chosen = QFileDialog::getOpenFileName(this, QString(), path(), filter_); break;
    case Mode::SaveFile: chosen = QFileDialog::getSaveFileName(this, QString(), path(), filter_); break;
    case Mode::Directory: chosen = QFileDialog::getExistingDirectory(this, QString(), path()); break;
    }
    if (!chosen.isEmpty())
        setPath(chosen);
}

// ---------------------------------------------------------------------------------------------------------
// RunOn

bool slurmAvailable() { return !findOnPath("sbatch").empty(); }

QString RunOn::validate(const RunOn& r) {
    if (!r.cluster)
        return {};
    // Slurm's --time: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S; --mem: a number with an optional K/M/G/T.
    static const QRegularExpression time(QStringLiteral(R"(^(\d+-\d+(:\d+){0,2}|\d+(:\d+){0,2})$)"));
    static const QRegularExpression memory(QStringLiteral(R"(^\d+[KMGT]?$)"));
    if (!r.slurm.time.empty() && !time.match(QString::fromStdString(r.slurm.time)).hasMatch())
        return QStringLiteral("Time limit '%1' is not in Slurm's format (minutes, H:MM:SS or D-HH:MM:SS).")
            .arg(QString::fromStdString(r.slurm.time));
    if (!r.slurm.memory.empty() && !memory.match(QString::fromStdString(r.slurm.memory)).hasMatch())
        return QStringLiteral("Memory '%1' is not in Slurm's format (a number with K, M, G or T, e.g. 8G).")
            .arg(QString::fromStdString(r.slurm.memory));
    for (const QString& field : {QString::fromStdString(r.slurm.partition), QString::fromStdString(r.slurm.account)})
        if (field.contains(QLatin1Char(' ')))
            return QStringLiteral("Partition and account are single words, not '%1'.").arg(field);
    return {};
}

// ---------------------------------------------------------------------------------------------------------
// OptionsDialog

OptionsDialog::OptionsDialog(const QString& title, const QString& settingsGroup, QWidget* parent)
    : QDialog(parent), form_(new QFormLayout), group_(QStringLiteral("dialogs/") + settingsGroup),
      error_(new QLabel(this)), ok_(nullptr) {
    setWindowTitle(title);
    error_->setObjectName(QStringLiteral("validationError"));
    error_->setWordWrap(true);
    error_->setStyleSheet(QStringLiteral("color: #c62828;"));
    error_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Ok | QDialogButtonBox::Cancel, this);
    ok_ = buttons->button(QDialogButtonBox::Ok);
    connect(buttons, &QDialogButtonBox::accepted, this, &OptionsDialog::accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &OptionsDialog::reject);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(form_);
    layout->addWidget(error_);
    layout->addWidget(buttons);
    setMinimumWidth(520);
}

void OptionsDialog::addField(const QString& label, QWidget* widget, const QString& key) {
    form_->addRow(label, widget);
    remember(key, widget);
}

void OptionsDialog::addRunOnFields() {
    if (runOn_ || !slurmAvailable())
        return;
    runOn_ = new QComboBox(this);
    runOn_->setObjectName(QStringLiteral("runOn"));
    runOn_->addItem(tr("this computer"), QStringLiteral("local"));
    runOn_->addItem(tr("Slurm cluster (nic submit)"), QStringLiteral("slurm"));
    runOn_->setToolTip(tr("On a cluster every slide, grid or round becomes a Slurm array task; the output folder "
                          "must be on a file system the compute nodes share. The Jobs dock follows the submission."));
    partition_ = new QLineEdit(this);
    partition_->setPlaceholderText(tr("the cluster's default"));
    time_ = new QLineEdit(this);
    time_->setPlaceholderText(tr("e.g. 4:00:00 (default: the partition's)"));
    cpus_ = new QSpinBox(this);
    cpus_->setRange(0, 1024);
    cpus_->setSpecialValueText(tr("the cluster's default"));
    memory_ = new QLineEdit(this);
    memory_->setPlaceholderText(tr("e.g. 8G"));
    account_ = new QLineEdit(this);
    account_->setPlaceholderText(tr("none"));
    addField(tr("Run on"), runOn_, QStringLiteral("runOn"));
    addField(tr("Partition"), partition_, QStringLiteral("slurmPartition"));
    addField(tr("Time limit per task"), time_, QStringLiteral("slurmTime"));
    addField(tr("CPUs per task"), cpus_, QStringLiteral("slurmCpus"));
    addField(tr("Memory per task"), memory_, QStringLiteral("slurmMemory"));
    addField(tr("Account"), account_, QStringLiteral("slurmAccount"));
    const auto showRows = [this] {
        const bool cluster = runOn_->currentData().toString() == QLatin1String("slurm");
        for (QWidget* w : std::initializer_list<QWidget*>{partition_, time_, cpus_, memory_, account_})
            form_->setRowVisible(w, cluster);
    };
    connect(runOn_, &QComboBox::currentIndexChanged, this, showRows);
    showRows();
}

RunOn OptionsDialog::runOn() const {
    RunOn r;
    if (!runOn_)
        return r;
    r.cluster = runOn_->currentData().toString() == QLatin1String("slurm");
    r.slurm.partition = partition_->text().trimmed().toStdString();
    r.slurm.time = time_->text().trimmed().toStdString();
    r.slurm.cpusPerTask = cpus_->value();
    r.slurm.memory = memory_->text().trimmed().toStdString();
    r.slurm.account = account_->text().trimmed().toStdString();
    return r;
}

void OptionsDialog::setRunOn(const RunOn& r) {
    if (!runOn_)
        return;
    runOn_->setCurrentIndex(r.cluster ? 1 : 0);
    partition_->setText(QString::fromStdString(r.slurm.partition));
    time_->setText(QString::fromStdString(r.slurm.time));
    cpus_->setValue(r.slurm.cpusPerTask);
    memory_->setText(QString::fromStdString(r.slurm.memory));
    account_->setText(QString::fromStdString(r.slurm.account));
}

void OptionsDialog::remember(const QString& key, QWidget* widget) {
    remembered_.append({key, widget});
    watch(widget);
}

void OptionsDialog::restoreSettings() {
    QSettings settings;
    settings.beginGroup(group_);
    for (const auto& [key, widget] : remembered_)
        if (settings.contains(key))
            setWidgetValue(widget, settings.value(key));
    revalidate();
}

QVariant OptionsDialog::widgetValue(const QWidget* w) {
    if (auto* e = qobject_cast<const QLineEdit*>(w))
        return e->text();
    if (auto* s = qobject_cast<const QSpinBox*>(w))
        return s->value();
    if (auto* d = qobject_cast<const QDoubleSpinBox*>(w))
        return d->value();
    if (auto* c = qobject_cast<const QComboBox*>(w))
        return c->currentData().isValid() ? c->currentData() : QVariant(c->currentText());
    if (auto* b = qobject_cast<const QCheckBox*>(w))
        return b->isChecked();
    if (auto* p = qobject_cast<const PathEdit*>(w))
        return p->path();
    if (auto* t = qobject_cast<const QPlainTextEdit*>(w))
        return t->toPlainText();
    return {};
}

void OptionsDialog::setWidgetValue(QWidget* w, const QVariant& v) {
    if (auto* e = qobject_cast<QLineEdit*>(w))
        e->setText(v.toString());
    else if (auto* s = qobject_cast<QSpinBox*>(w))
        s->setValue(v.toInt());
    else if (auto* d = qobject_cast<QDoubleSpinBox*>(w))
        d->setValue(v.toDouble());
    else if (auto* c = qobject_cast<QComboBox*>(w)) {
        // QSettings may hand back the string "8" for the int 8: compare as text.
        int i = -1;
        for (int k = 0; k < c->count() && i < 0; ++k)
            if (c->itemData(k).isValid() && c->itemData(k).toString() == v.toString())
                i = k;
        if (i < 0)
            i = c->findText(v.toString());
        if (i >= 0)
            c->setCurrentIndex(i);
        else if (c->isEditable())
            c->setCurrentText(v.toString());
    } else if (auto* b = qobject_cast<QCheckBox*>(w))
        b->setChecked(v.toBool());
    else if (auto* p = qobject_cast<PathEdit*>(w))
        p->setPath(v.toString());
    else if (auto* t = qobject_cast<QPlainTextEdit*>(w))
        t->setPlainText(v.toString());
}

void OptionsDialog::watch(QWidget* w) {
    if (auto* e = qobject_cast<QLineEdit*>(w))
        connect(e, &QLineEdit::textChanged, this, &OptionsDialog::revalidate);
    else if (auto* s = qobject_cast<QSpinBox*>(w))
        connect(s, &QSpinBox::valueChanged, this, &OptionsDialog::revalidate);
    else if (auto* d = qobject_cast<QDoubleSpinBox*>(w))
        connect(d, &QDoubleSpinBox::valueChanged, this, &OptionsDialog::revalidate);
    else if (auto* c = qobject_cast<QComboBox*>(w))
        connect(c, &QComboBox::currentTextChanged, this, &OptionsDialog::revalidate);
    else if (auto* b = qobject_cast<QCheckBox*>(w))
        connect(b, &QCheckBox::toggled, this, &OptionsDialog::revalidate);
    else if (auto* p = qobject_cast<PathEdit*>(w))
        connect(p, &PathEdit::pathChanged, this, &OptionsDialog::revalidate);
    else if (auto* t = qobject_cast<QPlainTextEdit*>(w))
        connect(t, &QPlainTextEdit::textChanged, this, &OptionsDialog::revalidate);
}

void OptionsDialog::revalidate() {
    QString problem = validationError();
    if (problem.isEmpty())
        problem = RunOn::validate(runOn());
    error_->setText(problem);
    error_->setVisible(!problem.isEmpty());
    ok_->setEnabled(problem.isEmpty());
}

void OptionsDialog::accept() {
    revalidate();
    if (!validationError().isEmpty() || !RunOn::validate(runOn()).isEmpty())
        return;
    QSettings settings;
    settings.beginGroup(group_);
    for (const auto& [key, widget] : remembered_)
        settings.setValue(key, widgetValue(widget));
    settings.endGroup();
    QDialog::accept();
}

// ---------------------------------------------------------------------------------------------------------
// CompressDialog

QString CompressDialog::Options::validate(const Options& o) {
    if (o.slides.isEmpty())
        return QStringLiteral("Add at least one slide.");
    for (const QString& s : o.slides)
        if (!QFileInfo(s).isFile())
            return QStringLiteral("Slide not found: %1").arg(s);
    if (o.encoder.trimmed().isEmpty())
        return QStringLiteral("Choose an encoder.");
    if (!builtinEncoders().contains(o.encoder) && !QFileInfo(o.encoder).isFile())
        return QStringLiteral("Encoder file not found: %1").arg(o.encoder);
    if (o.patchSize <= 0)
        return QStringLiteral("Patch size P must be positive, not %1.").arg(o.patchSize);
    if (o.stride <= 0)
        return QStringLiteral("Stride S must be positive, not %1.").arg(o.stride);
    if (o.stride > o.patchSize)
        return QStringLiteral("Stride S (%1) must not exceed the patch size P (%2): the grid would skip tissue.")
            .arg(o.stride)
            .arg(o.patchSize);
    if (!(o.targetMpp >= 0.0) || !std::isfinite(o.targetMpp))
        return QStringLiteral("Resolution must be positive µm/px, or 0 for the encoder's.");
    if (o.targetMpp > 64.0)
        return QStringLiteral("Resolution %1 µm/px is beyond any slide level (at most 64).").arg(o.targetMpp);
    if (o.augment != 1 && o.augment != 8)
        return QStringLiteral("Augmentation must be 1 (none) or 8 (all dihedral variants), not %1.").arg(o.augment);
    return checkOutputDir(o.outputDir);
}

CompressDialog::CompressDialog(QWidget* parent)
    : OptionsDialog(tr("Compress slides"), QStringLiteral("compress"), parent), slides_(new QPlainTextEdit(this)),
      encoder_(new QComboBox(this)), patch_(new QSpinBox(this)), stride_(new QSpinBox(this)),
      mpp_(new QDoubleSpinBox(this)), augment_(new QComboBox(this)),
      output_(new PathEdit(PathEdit::Mode::Directory, {}, this)) {
    slides_->setPlaceholderText(tr("One slide file per line"));
    slides_->setMaximumHeight(110);
    auto* addButton = new QPushButton(tr("Add slides…"), this);
    connect(addButton, &QPushButton::clicked, this, &CompressDialog::addSlides);
    auto* slidesBox = new QVBoxLayout;
    slidesBox->addWidget(slides_);
    slidesBox->addWidget(addButton, 0, Qt::AlignLeft);
    encoder_->setEditable(true);
    encoder_->addItems(builtinEncoders());
    encoder_->setToolTip(tr("A builtin encoder or the path of an encoder file"));
    auto* encoderBrowse = new QToolButton(this);
    encoderBrowse->setText(QStringLiteral("…"));
    connect(encoderBrowse, &QToolButton::clicked, this, [this] {
        const QString f = QFileDialog::getOpenFileName(this, tr("Encoder file"));
        if (!f.isEmpty())
            encoder_->setCurrentText(f);
    });
    auto* encoderBox = new QHBoxLayout;
    encoderBox->addWidget(encoder_, 1);
    encoderBox->addWidget(encoderBrowse);
    patch_->setRange(0, 4096);
    patch_->setSuffix(tr(" px"));
    stride_->setRange(0, 16384);
    stride_->setSuffix(tr(" px"));
    mpp_->setRange(0.0, 1000.0);
    mpp_->setDecimals(3);
    mpp_->setSingleStep(0.25);
    mpp_->setSuffix(tr(" µm/px"));
    mpp_->setSpecialValueText(tr("encoder's"));
    augment_->addItem(tr("none (1)"), 1);
    augment_->addItem(tr("all dihedral variants (8)"), 8);
    form_->addRow(tr("Slides"), slidesBox);
    form_->addRow(tr("Encoder"), encoderBox);
    addField(tr("Patch size P"), patch_, QStringLiteral("patchSize"));
    addField(tr("Stride S"), stride_, QStringLiteral("stride"));
    addField(tr("Resolution"), mpp_, QStringLiteral("targetMpp"));
    addField(tr("Augmentation"), augment_, QStringLiteral("augment"));
    addField(tr("Output folder"), output_, QStringLiteral("outputDir"));
    watch(slides_); // slides are not remembered: they differ every time
    remember(QStringLiteral("encoder"), encoder_);
    addRunOnFields();

    setOptions(Options{});
    restoreSettings();
}

CompressDialog::Options CompressDialog::options() const {
    Options o;
    o.slides = nonEmptyLines(slides_->toPlainText());
    o.encoder = encoder_->currentText().trimmed();
    o.patchSize = patch_->value();
    o.stride = stride_->value();
    o.targetMpp = mpp_->value();
    o.augment = augment_->currentData().toInt();
    o.outputDir = output_->path();
    o.runOn = runOn();
    return o;
}

void CompressDialog::setOptions(const Options& o) {
    slides_->setPlainText(o.slides.join(QLatin1Char('\n')));
    encoder_->setCurrentText(o.encoder);
    patch_->setValue(o.patchSize);
    stride_->setValue(o.stride);
    mpp_->setValue(o.targetMpp);
    const int a = augment_->findData(o.augment);
    augment_->setCurrentIndex(a >= 0 ? a : 0);
    output_->setPath(o.outputDir);
    setRunOn(o.runOn);
    revalidate();
}


void CompressDialog::addSlides() {
    const QStringList files = QFileDialog::getOpenFileNames(
        this, tr("Add slides"), QString(), tr("Slides (*.svs *.tif *.tiff *.ndpi *.mrxs *.scn *.vms *.bif);;All files (*)"));
    if (files.isEmpty())
        return;
    QStringList all = nonEmptyLines(slides_->toPlainText());
    for (const QString& f : files)
        if (!all.contains(f))
            all << f;
    slides_->setPlainText(all.join(QLatin1Char('\n')));
}

// ---------------------------------------------------------------------------------------------------------
// TrainEncoderDialog

QStringList TrainEncoderDialog::methods() {
    return {QStringLiteral("vae"), QStringLiteral("contrastive"), QStringLiteral("bigan"), QStringLiteral("supervised-tumor"),
            QStringLiteral("supervised-tissue")};
}

QString TrainEncoderDialog::Options::validate(const Options& o) {
    if (!methods().contains(o.method))
        return QStringLiteral("Unknown method '%1' (one of %2).").arg(o.method, methods().join(QStringLiteral(", ")));
    if (o.patchSource.trimmed().isEmpty())
        return QStringLiteral("Choose a patch source.");
    if (!QFileInfo::exists(o.patchSource))
        return QStringLiteral("Patch source not found: %1").arg(o.patchSource);
    if (o.output.trimmed().isEmpty())
        return QStringLiteral("Choose where to save the encoder.");
    const QFileInfo out(o.output);
    if (out.isDir())
        return QStringLiteral("Encoder output is a folder: %1").arg(o.output);
    if (!QFileInfo(out.absolutePath()).isDir())
        return QStringLiteral("Folder does not exist: %1").arg(out.absolutePath());
    if (o.epochs < 0)
        return QStringLiteral("Epochs must be 0 (no epoch cap) or more, not %1.").arg(o.epochs);
    if (o.steps < 0)
        return QStringLiteral("Steps must be 0 (no step cap) or more, not %1.").arg(o.steps);
    if (o.stepsPerEpoch < 0)
        return QStringLiteral("Steps per epoch must be 0 (one pass) or more, not %1.").arg(o.stepsPerEpoch);
    if (o.method == QLatin1String("bigan") && o.epochs == 0 && o.steps == 0)
        return QStringLiteral("BiGAN trains at a fixed learning rate: set an epoch or step cap.");
    if (!(o.learningRate >= 0.0) || o.learningRate > 1.0)
        return QStringLiteral("Learning rate must be in (0, 1], or 0 for the method's default.");
    if (o.codeSize < 1 || o.codeSize > 4096)
        return QStringLiteral("Code size C must be between 1 and 4096, not %1.").arg(o.codeSize);
    return {};
}

TrainEncoderDialog::TrainEncoderDialog(QWidget* parent)
    : OptionsDialog(tr("Train encoder"), QStringLiteral("trainEncoder"), parent), method_(new QComboBox(this)),
      source_(new PathEdit(PathEdit::Mode::OpenFile, tr("Patch banks (*.h5 *.hdf5);;All files (*)"), this)),
      output_(new PathEdit(PathEdit::Mode::SaveFile, tr("Encoder files (*.pt *.nicenc);;All files (*)"), this)),
      budget_(new QComboBox(this)), budgetNote_(new QLabel(this)), epochs_(new QSpinBox(this)),
      steps_(new QSpinBox(this)), stepsPerEpoch_(new QSpinBox(this)), lr_(new QDoubleSpinBox(this)),
      code_(new QSpinBox(this)) {
    method_->addItems(methods());
    budget_->setObjectName(QStringLiteral("budget"));
    for (const auto& p : trainingBudgetPresets())
        budget_->addItem(QString::fromStdString(p), QString::fromStdString(p));
    budget_->addItem(tr("custom"), QStringLiteral("custom"));
    budget_->setToolTip(tr("default: 20 epochs of one pass. paper (supplementary 7): BiGAN 200,000 steps; the other "
                           "methods until the learning rate reaches 1e-5. demo: 90 steps as 3 epochs of 30. "
                           "Editing the caps below makes the budget custom."));
    budgetNote_->setObjectName(QStringLiteral("budgetNote"));
    budgetNote_->setWordWrap(true);
    epochs_->setObjectName(QStringLiteral("epochs"));
    steps_->setObjectName(QStringLiteral("steps"));
    stepsPerEpoch_->setObjectName(QStringLiteral("stepsPerEpoch"));
    epochs_->setRange(0, 1000000);
    epochs_->setSpecialValueText(tr("no cap"));
    steps_->setRange(0, 100000000);
    steps_->setSpecialValueText(tr("no cap"));
    steps_->setGroupSeparatorShown(true);
    stepsPerEpoch_->setRange(0, 100000000);
    stepsPerEpoch_->setSpecialValueText(tr("one pass"));
    lr_->setRange(0.0, 10.0);
    lr_->setDecimals(6);
    lr_->setSingleStep(1e-4);
    lr_->setSpecialValueText(tr("method's default"));
    code_->setRange(0, 100000);
    addField(tr("Method"), method_, QStringLiteral("method"));
    addField(tr("Patch source"), source_, QStringLiteral("patchSource"));
    addField(tr("Encoder file"), output_, QStringLiteral("output"));
    form_->addRow(tr("Budget"), budget_);
    form_->addRow(QString(), budgetNote_);
    addField(tr("Epochs"), epochs_, QStringLiteral("epochs"));
    addField(tr("Steps"), steps_, QStringLiteral("steps"));
    addField(tr("Steps per epoch"), stepsPerEpoch_, QStringLiteral("stepsPerEpoch"));
    addField(tr("Learning rate"), lr_, QStringLiteral("learningRate"));
    addField(tr("Code size C"), code_, QStringLiteral("codeSize"));
    connect(budget_, &QComboBox::activated, this, [this] { applyBudgetPreset(); });
    // A preset's caps depend on the method (paper: BiGAN by steps, the others to the floor).
    connect(method_, &QComboBox::currentIndexChanged, this, [this] {
        if (budget_->currentData().toString() != QLatin1String("custom"))
            applyBudgetPreset();
        updateBudgetField();
    });
    for (QSpinBox* cap : {epochs_, steps_, stepsPerEpoch_})
        connect(cap, &QSpinBox::valueChanged, this, [this] { updateBudgetField(); });
    setOptions(Options{});
    restoreSettings();
    updateBudgetField();
}

QString TrainEncoderDialog::budgetPreset() const {
    const Options o = options();
    const std::string p =
        matchingTrainingBudget(TrainingBudget{o.epochs, o.steps, o.stepsPerEpoch}, o.method.toStdString());
    return p.empty() ? QStringLiteral("custom") : QString::fromStdString(p);
}

void TrainEncoderDialog::applyBudgetPreset() {
    const QString preset = budget_->currentData().toString();
    if (preset == QLatin1String("custom"))
        return updateBudgetField();
    const TrainingBudget b = trainingBudget(preset.toStdString(), method_->currentText().toStdString());
    const QSignalBlocker b1(epochs_), b2(steps_), b3(stepsPerEpoch_);
    epochs_->setValue(b.epochs);
    steps_->setValue(static_cast<int>(b.steps));
    stepsPerEpoch_->setValue(b.stepsPerEpoch);
    updateBudgetField();
    revalidate();
}

void TrainEncoderDialog::updateBudgetField() {
    const Options o = options();
    const QString preset = budgetPreset();
    const int i = budget_->findData(preset);
    if (i >= 0 && i != budget_->currentIndex()) {
        const QSignalBlocker block(budget_);
        budget_->setCurrentIndex(i);
    }
    const bool floor = o.method != QLatin1String("bigan");
    budgetNote_->setText(tr("Training ends %1.").arg(QString::fromStdString(
        describeTrainingBudget(TrainingBudget{o.epochs, o.steps, o.stepsPerEpoch}, floor))));
}

TrainEncoderDialog::Options TrainEncoderDialog::options() const {
    Options o;
    o.method = method_->currentText();
    o.patchSource = source_->path();
    o.output = output_->path();
    o.epochs = epochs_->value();
    o.steps = steps_->value();
    o.stepsPerEpoch = stepsPerEpoch_->value();
    o.learningRate = lr_->value();
    o.codeSize = code_->value();
    return o;
}

void TrainEncoderDialog::setOptions(const Options& o) {
    const int m = method_->findText(o.method);
    method_->setCurrentIndex(m >= 0 ? m : 0);
    source_->setPath(o.patchSource);
    output_->setPath(o.output);
    epochs_->setValue(o.epochs);
    steps_->setValue(static_cast<int>(std::min<qint64>(o.steps, steps_->maximum())));
    stepsPerEpoch_->setValue(o.stepsPerEpoch);
    lr_->setValue(o.learningRate);
    code_->setValue(o.codeSize);
    updateBudgetField();
    revalidate();
}


// ---------------------------------------------------------------------------------------------------------
// TrainSlideModelDialog

QString TrainSlideModelDialog::Options::validate(const Options& o) {
    if (o.cohort.trimmed().isEmpty())
        return QStringLiteral("Choose a cohort CSV.");
    if (!QFileInfo(o.cohort).isFile())
        return QStringLiteral("Cohort file not found: %1").arg(o.cohort);
    std::size_t slides = 0;
    try {
        slides = readCohort(o.cohort.toStdString()).entries.size();
    } catch (const std::exception& e) {
        return QStringLiteral("Cohort: %1").arg(QString::fromUtf8(e.what()));
    }
    if (o.gridsDir.trimmed().isEmpty())
        return QStringLiteral("Choose the folder of compressed slides.");
    if (!QFileInfo(o.gridsDir).isDir())
        return QStringLiteral("Folder of compressed slides not found: %1").arg(o.gridsDir);
    if (o.task != QLatin1String("classification") && o.task != QLatin1String("regression"))
        return QStringLiteral("Task must be classification or regression, not '%1'.").arg(o.task);
    if (o.folds < 3)
        return QStringLiteral("Cross-validation needs at least 3 folds (train, validation, test), not %1.").arg(o.folds);
    if (static_cast<std::size_t>(o.folds) > slides)
        return QStringLiteral("%1 folds need at least %1 slides; the cohort has %2.").arg(o.folds).arg(slides);
    if (o.cropSize < 1)
        return QStringLiteral("Crop size R must be at least 1, not %1.").arg(o.cropSize);
    if (o.testCrops < 1)
        return QStringLiteral("Test crops T must be at least 1, not %1.").arg(o.testCrops);
    if (o.epochs < 1)
        return QStringLiteral("Epochs must be at least 1, not %1.").arg(o.epochs);
    if (o.head != QLatin1String("auto") && o.head != QLatin1String("max") && o.head != QLatin1String("avg") &&
        o.head != QLatin1String("flatten"))
        return QStringLiteral("Head must be auto, max, avg or flatten, not '%1'.").arg(o.head);
    return checkOutputDir(o.outputDir);
}

TrainSlideModelDialog::TrainSlideModelDialog(QWidget* parent)
    : OptionsDialog(tr("Train slide model"), QStringLiteral("trainSlideModel"), parent),
      cohort_(new PathEdit(PathEdit::Mode::OpenFile, tr("Cohort CSV (*.csv);;All files (*)"), this)),
      grids_(new PathEdit(PathEdit::Mode::Directory, {}, this)), task_(new QComboBox(this)), folds_(new QSpinBox(this)),
      crop_(new QSpinBox(this)), testCrops_(new QSpinBox(this)), epochs_(new QSpinBox(this)), head_(new QComboBox(this)),
      output_(new PathEdit(PathEdit::Mode::Directory, {}, this)) {
    task_->addItems({QStringLiteral("classification"), QStringLiteral("regression")});
    head_->addItem(tr("auto (max to classify, avg to regress)"), QStringLiteral("auto"));
    head_->addItem(tr("global max pooling"), QStringLiteral("max"));
    head_->addItem(tr("global average pooling"), QStringLiteral("avg"));
    head_->addItem(tr("flatten + dense (paper, R × R input)"), QStringLiteral("flatten"));
    head_->setToolTip(tr("How the last feature map reaches the dense layer (nic train --head)"));
    folds_->setRange(0, 100);
    crop_->setRange(0, 8192);
    crop_->setSuffix(tr(" cells"));
    testCrops_->setRange(0, 1000);
    epochs_->setRange(0, 10000);
    addField(tr("Cohort"), cohort_, QStringLiteral("cohort"));
    addField(tr("Compressed slides"), grids_, QStringLiteral("gridsDir"));
    addField(tr("Task"), task_, QStringLiteral("task"));
    addField(tr("Folds"), folds_, QStringLiteral("folds"));
    addField(tr("Crop size R"), crop_, QStringLiteral("cropSize"));
    addField(tr("Test crops T"), testCrops_, QStringLiteral("testCrops"));
    addField(tr("Epochs"), epochs_, QStringLiteral("epochs"));
    addField(tr("Head"), head_, QStringLiteral("head"));
    addField(tr("Output folder"), output_, QStringLiteral("outputDir"));
    addRunOnFields();
    setOptions(Options{});
    restoreSettings();
}

TrainSlideModelDialog::Options TrainSlideModelDialog::options() const {
    Options o;
    o.cohort = cohort_->path();
    o.gridsDir = grids_->path();
    o.task = task_->currentText();
    o.folds = folds_->value();
    o.cropSize = crop_->value();
    o.testCrops = testCrops_->value();
    o.epochs = epochs_->value();
    o.head = head_->currentData().toString();
    o.outputDir = output_->path();
    o.runOn = runOn();
    return o;
}

void TrainSlideModelDialog::setOptions(const Options& o) {
    cohort_->setPath(o.cohort);
    grids_->setPath(o.gridsDir);
    const int t = task_->findText(o.task);
    task_->setCurrentIndex(t >= 0 ? t : 0);
    folds_->setValue(o.folds);
    crop_->setValue(o.cropSize);
    testCrops_->setValue(o.testCrops);
    epochs_->setValue(o.epochs);
    const int h = head_->findData(o.head);
    head_->setCurrentIndex(h >= 0 ? h : 0);
    output_->setPath(o.outputDir);
    setRunOn(o.runOn);
    revalidate();
}


// ---------------------------------------------------------------------------------------------------------
// GradCamDialog

QString GradCamDialog::Options::validate(const Options& o) {
    if (o.model.trimmed().isEmpty())
        return QStringLiteral("Choose a model file or a training run folder.");
    if (QFileInfo(o.model).isDir()) {
        if (!isRunFolder(o.model.toStdString()))
            return QStringLiteral("Not a training run folder (no folds.csv): %1").arg(o.model);
    } else if (!QFileInfo(o.model).isFile()) {
        return QStringLiteral("Model file not found: %1").arg(o.model);
    }
    if (o.slides.isEmpty())
        return QStringLiteral("Add at least one compressed slide.");
    for (const QString& s : o.slides) {
        if (!QFileInfo(s).isFile())
            return QStringLiteral("Compressed slide not found: %1").arg(s);
        if (QFileInfo(s).suffix().compare(QLatin1String("h5"), Qt::CaseInsensitive) != 0)
            return QStringLiteral("Not a compressed slide (.h5): %1").arg(s);
    }
    if (o.layer < 0)
        return QStringLiteral("Layer k must be 0 (input) or more, not %1.").arg(o.layer);
    return checkOutputDir(o.outputDir);
}

GradCamDialog::GradCamDialog(QWidget* parent)
    : OptionsDialog(tr("Grad-CAM heatmaps"), QStringLiteral("gradCam"), parent),
      model_(new PathEdit(PathEdit::Mode::OpenFile, tr("Slide models (*.pt);;All files (*)"), this)),
      slides_(new QPlainTextEdit(this)), layer_(new QSpinBox(this)),
      output_(new PathEdit(PathEdit::Mode::Directory, {}, this)),
      png_(new QCheckBox(tr("PNG overlay (<slide>_gradcam.png)"), this)),
      tiff_(new QCheckBox(tr("ASAP likelihood map (<slide>_likelihood_map.tif)"), this)) {
    model_->setToolTip(tr("A slide model (.pt), or a training run folder: each slide is then explained by the "
                          "model of the cross-validation round that held it out"));
    auto* runButton = new QPushButton(tr("Run folder…"), this);
    runButton->setObjectName(QStringLiteral("runFolderButton"));
    connect(runButton, &QPushButton::clicked, this, &GradCamDialog::chooseRunFolder);
    auto* modelBox = new QHBoxLayout;
    modelBox->setContentsMargins(0, 0, 0, 0);
    modelBox->addWidget(model_, 1);
    modelBox->addWidget(runButton);
    slides_->setPlaceholderText(tr("One compressed slide (.h5) per line"));
    slides_->setMaximumHeight(110);
    auto* addButton = new QPushButton(tr("Add compressed slides…"), this);
    connect(addButton, &QPushButton::clicked, this, &GradCamDialog::addSlides);
    auto* slidesBox = new QVBoxLayout;
    slidesBox->addWidget(slides_);
    slidesBox->addWidget(addButton, 0, Qt::AlignLeft);
    layer_->setRange(-1, 64);
    form_->addRow(tr("Model"), modelBox);
    remember(QStringLiteral("model"), model_);
    form_->addRow(tr("Slides"), slidesBox);
    addField(tr("Layer k"), layer_, QStringLiteral("layer"));
    addField(tr("Output folder"), output_, QStringLiteral("outputDir"));
    form_->addRow(tr("Also write"), png_);
    form_->addRow(QString(), tiff_);
    remember(QStringLiteral("png"), png_);
    remember(QStringLiteral("tiff"), tiff_);
    watch(slides_);
    addRunOnFields();
    setOptions(Options{});
    restoreSettings();
}

GradCamDialog::Options GradCamDialog::options() const {
    Options o;
    o.model = model_->path();
    o.slides = nonEmptyLines(slides_->toPlainText());
    o.layer = layer_->value();
    o.outputDir = output_->path();
    o.png = png_->isChecked();
    o.tiff = tiff_->isChecked();
    o.runOn = runOn();
    return o;
}

void GradCamDialog::setOptions(const Options& o) {
    model_->setPath(o.model);
    slides_->setPlainText(o.slides.join(QLatin1Char('\n')));
    layer_->setValue(o.layer);
    output_->setPath(o.outputDir);
    png_->setChecked(o.png);
    tiff_->setChecked(o.tiff);
    setRunOn(o.runOn);
    revalidate();
}

void GradCamDialog::chooseRunFolder() {
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Training run folder"), model_->path());
    if (!dir.isEmpty())
        model_->setPath(dir);
}


void GradCamDialog::addSlides() {
    const QStringList files =
        QFileDialog::getOpenFileNames(this, tr("Add compressed slides"), QString(), tr("Compressed slides (*.h5)"));
    if (files.isEmpty())
        return;
    QStringList all = nonEmptyLines(slides_->toPlainText());
    for (const QString& f : files)
        if (!all.contains(f))
            all << f;
    slides_->setPlainText(all.join(QLatin1Char('\n')));
}

} // namespace nic
