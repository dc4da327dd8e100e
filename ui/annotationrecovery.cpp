#include "ui/annotationrecovery.h"

#include "core/annotations/annotation.h"
#include "core/base/atomicfile.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QStandardPaths>

#include <unistd.h>

namespace nic {

namespace {

QString besideSlide(const QString& slidePath) {
    const QFileInfo fi(slidePath);
    return fi.absoluteDir().filePath(fi.completeBaseName() + QStringLiteral(".xml.recovery"));
}

QString inSettings(const QString& slidePath) {
    const QString dir = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) + QStringLiteral("/recovery");
    const QByteArray key =
        QCryptographicHash::hash(QFileInfo(slidePath).absoluteFilePath().toUtf8(), QCryptographicHash::Sha1).toHex();
    return dir + QLatin1Char('/') + QString::fromLatin1(key.left(16)) + QStringLiteral(".xml.recovery");
}

} // namespace

AnnotationRecovery::AnnotationRecovery(const QString& slidePath, std::function<AnnotationSet()> snapshot, QObject* parent)
    : QObject(parent), slidePath_(slidePath), path_(recoveryPathFor(slidePath)), snapshot_(std::move(snapshot)) {
    timer_.setSingleShot(true);
    timer_.setInterval(1000);
    connect(&timer_, &QTimer::timeout, this, [this] { writeNow(); });
}

QString AnnotationRecovery::unfinishedName() { return QStringLiteral("Unfinished outline (recovered)"); }

QString AnnotationRecovery::recoveryPathFor(const QString& slidePath) {
    const QString dir = QFileInfo(slidePath).absolutePath();
    return ::access(QFile::encodeName(dir).constData(), W_OK) == 0 ? besideSlide(slidePath) : inSettings(slidePath);
}

QString AnnotationRecovery::existingRecoveryFile(const QString& slidePath) {
    for (const QString& p : {besideSlide(slidePath), inSettings(slidePath)})
        if (QFileInfo::exists(p))
            return p;
    return {};
}

void AnnotationRecovery::schedule() { timer_.start(); }

bool AnnotationRecovery::writeNow() {
    timer_.stop();
    path_ = recoveryPathFor(slidePath_);
    try {
        const AnnotationSet set = snapshot_();
        QDir().mkpath(QFileInfo(path_).absolutePath());
        set.save(path_.toStdString());
    } catch (const std::exception& e) {
        Q_EMIT failed(tr("Cannot write the annotation recovery file: %1").arg(QString::fromUtf8(e.what())));
        return false;
    }
    Q_EMIT written(path_);
    return true;
}

void AnnotationRecovery::remove() {
    timer_.stop();
    QFile::remove(besideSlide(slidePath_));
    QFile::remove(inSettings(slidePath_));
}

} // namespace nic
