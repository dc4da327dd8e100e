#!/usr/bin/env python3
"""Lists C++ functions longer than a limit (default 120 lines), counted from the first line of the
signature to the closing brace, longest first. Exit status 1 when any is listed, 0 otherwise.

Usage: scripts/check-function-length.py [--limit N] [PATH...]
PATH: .cpp/.h files or folders (searched recursively); default: the pipeline code (every stage folder of
core/ with its nn/ half, not the synthetic cohort generator core/synth/; app/nic/, ui/workflow.cpp, ui/nn/).
The ctest `function_length` runs the default.

A brace-matching scan, not a parser: comments, string and character literals (raw strings included)
and preprocessor lines are blanked first; a block whose opening text ends like a function signature
(a parameter list, then qualifiers, a trailing return type or a constructor's initialiser list) is a
function, namespace/class/struct bodies are searched for member functions, and everything else
(initialisers, enums) is skipped. Lambdas count as part of the function that holds them.
"""
import argparse
import os
import re
import sys

def default_paths():
    """The pipeline code: core's stage folders (not core/synth), app/nic, the workflow and its LibTorch jobs."""
    stages = sorted(os.path.join("core", d) for d in os.listdir("core")
                    if os.path.isdir(os.path.join("core", d)) and d != "synth")
    return stages + ["app/nic", "ui/workflow.cpp", "ui/nn"]


def blank(text):
    """Returns `text` with comments, literals and preprocessor lines replaced by spaces (newlines kept)."""
    out = []
    i, n = 0, len(text)
    line_start = True
    while i < n:
        c = text[i]
        if line_start and c == "#":
            # A preprocessor line, with its continuations.
            while i < n and text[i] != "\n":
                if text[i] == "\\" and i + 1 < n and text[i + 1] == "\n":
                    out.append(" \n")
                    i += 2
                    continue
                out.append(" ")
                i += 1
            continue
        if c == "\n":
            line_start = True
            out.append(c)
            i += 1
            continue
        if not c.isspace():
            line_start = False
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
            continue
        m = re.match(r'(?:u8|u|U|L)?R"([^()\\ ]{0,16})\(', text[i:i + 40])
        if m and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            end = text.find(")" + m.group(1) + '"', i + m.end())
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append('"' + re.sub(r"[^\n]", " ", text[i + 1:end - 1]) + '"')
            i = end
            continue
        if c == "'" and i > 0 and text[i - 1].isalnum() and re.match(r"[0-9A-Fa-f]", text[i + 1:i + 2] or " "):
            # A digit separator (1'000'000), if the token before is a number.
            k = i - 1
            while k >= 0 and (text[k].isalnum() or text[k] in "'."):
                k -= 1
            if text[k + 1].isdigit():
                out.append(c)
                i += 1
                continue
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + " " * (j - i - 2) + c if j - i >= 2 else c)
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


CONTAINER = re.compile(r"^(?:template\s*<.*>\s*)?(?:(?:inline\s+)?namespace\b[\w:\s]*|extern\s*\"\s*\"|"
                       r"(?:class|struct|union)\b[^()]*)$", re.S)
ENUM = re.compile(r"^(?:typedef\s+)?enum\b", re.S)
QUALIFIERS = re.compile(r"^(?:\s|const\b|volatile\b|override\b|final\b|mutable\b|noexcept\b(?:\s*\([^()]*\))?|"
                        r"&&?|->\s*[\w:<>,\s*&]+?(?=\s*(?:$|\{|override\b|final\b))|try\b)*"
                        r"(?::.*)?$", re.S)


INIT_LIST = re.compile(r"^\s*(?:noexcept\b\s*)?:(?!:)")


def matching_paren(s, start):
    depth = 0
    for k in range(start, len(s)):
        if s[k] == "(":
            depth += 1
        elif s[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return -1


def function_name(head):
    """The name of the function whose signature (up to the body's brace) is `head` and the text after its
    parameter list, or None."""
    head = re.sub(r"^(?:(?:public|private|protected|Q_SLOTS|Q_SIGNALS|signals|slots)\s*)+:(?!:)", "", head.strip())
    head = head.strip()
    if not head or CONTAINER.match(head) or ENUM.match(head):
        return None
    ident = re.compile(r"(operator\s*(?:\(\s*\)|[^\s(]+)|~?[A-Za-z_]\w*(?:\s*::\s*~?[A-Za-z_]\w*)*)\s*\(")
    pos = 0
    while True:
        m = ident.search(head, pos)
        if not m:
            return None
        before = head[:m.start()]
        if "=" in re.sub(r"operator\s*\S+|<[^<>]*>", "", before) or before.rstrip().endswith(("return", "[")):
            return None  # a variable's initialiser (a lambda, a braced value)
        close = matching_paren(head, m.end() - 1)
        if close < 0:
            return None
        name = re.sub(r"\s+", "", m.group(1))
        if name in ("if", "for", "while", "switch", "catch", "return", "sizeof"):
            return None
        if QUALIFIERS.match(head[close + 1:]):
            return name, head[close + 1:]
        pos = close + 1  # e.g. decltype(...) or a macro before the name


def scan(text):
    """Yields (name, first line, last line) of every function in the (blanked) text."""
    line_of = []
    line = 1
    for ch in text:
        line_of.append(line)
        if ch == "\n":
            line += 1
    results = []

    def skip_block(i):
        depth = 0
        for k in range(i, len(text)):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    return k
        return len(text) - 1

    def walk(start, end):
        seg_start = start
        i = start
        while i < end:
            c = text[i]
            if c in ";}":
                seg_start = i + 1
            elif c == "{":
                head = text[seg_start:i]
                close = skip_block(i)
                found = function_name(head)
                name = found[0] if found else None
                stripped = head.strip()
                if name and INIT_LIST.match(found[1]) and re.search(r"[\w>]\s*$", head):
                    # A member's braced initialiser in a constructor's initialiser list (`: a_{x} {`), not the body.
                    i = close + 1
                    continue
                if name:
                    first = seg_start + (len(head) - len(head.lstrip()))
                    label = re.match(r"^((?:(?:public|private|protected|Q_SLOTS|Q_SIGNALS)\s*)+:(?!:)\s*)", head[first - seg_start:])
                    if label:
                        first += len(label.group(1))
                    results.append((name, line_of[first], line_of[close]))
                elif CONTAINER.match(re.sub(r"^(?:(?:public|private|protected)\s*)+:(?!:)", "", stripped).strip()):
                    walk(i + 1, close)
                i = close
                seg_start = i + 1
                # `struct S { ... } s;` and `};` need no special care: the next segment starts after the brace.
            i += 1

    walk(0, len(text))
    return results


def files_under(paths):
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                for name in sorted(names):
                    if name.endswith((".cpp", ".h")):
                        yield os.path.join(root, name)
        elif os.path.isfile(p):
            yield p
        else:
            sys.exit(f"check-function-length: {p}: no such file or folder")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=120, help="longest allowed function, in lines (default 120)")
    ap.add_argument("paths", nargs="*", help="files or folders (default: the pipeline code)")
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")) if not args.paths else None
    found = []
    for path in sorted(set(files_under(args.paths or default_paths()))):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = blank(f.read())
        for name, first, last in scan(text):
            length = last - first + 1
            if length > args.limit:
                found.append((length, path, first, name))
    for length, path, first, name in sorted(found, key=lambda t: (-t[0], t[1], t[2])):
        print(f"{path}:{first}: {name} ({length} lines)")
    print(f"{len(found)} function(s) over {args.limit} lines", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
