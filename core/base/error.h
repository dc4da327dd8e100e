#pragma once
// Error hierarchy of core/. Everything core/ throws derives from nic::Error; the message is complete
// and user-facing (it names the file and the cause), so the edges (CLI, GUI jobs) print what() as is.
#include <stdexcept>
#include <string>

namespace nic {

/// Base of all errors thrown by core/. what() is a one-line, user-facing message.
class Error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A file could not be read or written (missing, unreadable, disk full, ...).
class IoError : public Error {
public:
    using Error::Error;
};

/// A slide could not be opened or read (OpenSlide's own cause is included).
class SlideError : public Error {
public:
    using Error::Error;
};

/// A file's contents are malformed or inconsistent (a cohort CSV, a run folder, a checkpoint, a compressed
/// slide, a patch bank, ...): the file was read, but what it says cannot be used. The message names the file
/// (and the line, field or dataset) and the cause. Not a usage error: the CLI exits with 1, not 2.
class FormatError : public Error {
public:
    using Error::Error;
};

/// Malformed or inconsistent annotation XML.
class AnnotationError : public FormatError {
public:
    using FormatError::FormatError;
};

/// A parameter (a command-line option, a dialog field, an argument of a core call) is out of range or
/// inconsistent: the CLI's usage exit code 2. Bad file contents are FormatError, never this.
class InvalidArgument : public Error {
public:
    using Error::Error;
};

/// A job was cancelled through its JobContext.
class Cancelled : public Error {
public:
    Cancelled() : Error("cancelled") {}
};

} // namespace nic
