#!/usr/bin/env python3
"""Lists C++ functions whose bodies exceed a line count (issue 7: no function
over ~80 lines outside the pickle opcode switch).

Usage: scripts/long_functions.py [--max N] [PATH ...]   (default: --max 80 src apps)

A function body is a top-level brace block (outside namespaces, classes and
structs; member functions defined in a class body count too) whose opening
brace follows a ')' (possibly with const / override / noexcept / an initialiser
list / a trailing return type between them). Lines are counted from the line of
the opening brace to the line of the closing brace, both included. Comments,
string and character literals (raw strings included) are blanked before the
braces are matched. The pickle opcode switch (ALLOWED) is exempt. Prints "path:line: name: N lines" per long function and
exits 1 when there is any (0 otherwise).
"""
import argparse
import os
import re
import sys

EXTENSIONS = (".cpp", ".cc", ".h", ".hpp")
# (path suffix, function name) allowed to be long: the pickle opcode switch reads
# best as one dispatch over the opcodes (issue 7 exempts it).
ALLOWED = {("src/io/pickle.cpp", "step")}


def blank_comments_and_strings(text):
    """Replaces comments and literals by spaces, keeping newlines (line numbers)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^()\\\s]{0,16})\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = ")" + m.group(1) + '"'
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            # a digit separator (1'000) is not a character literal
            if c == "'" and i > 0 and text[i - 1].isalnum() and i + 1 < n and text[i + 1].isalnum():
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def blank_preprocessor(text):
    return re.sub(r"(?m)^[ \t]*#.*(?:\\\n.*)*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


SCOPE_RE = re.compile(r"\b(namespace|class|struct|union|enum)\b[^;{}()]*$")
FUNC_TAIL_RE = re.compile(
    r"\)\s*(?:const\s*|override\s*|final\s*|noexcept(?:\([^()]*\))?\s*|mutable\s*|"
    r"->\s*[\w:<>,\s*&]+|:\s*[\w:]+\s*[({][^{}]*[)}](?:\s*,\s*[\w:]+\s*[({][^{}]*[)}])*\s*)*$"
)
NAME_RE = re.compile(r"([~\w:]+(?:<[^<>]*>)?|operator\s*[^\s(]+)\s*\($")


def function_name(head):
    """The name before the parameter list of a function head."""
    depth = 0
    for k in range(len(head) - 1, -1, -1):
        if head[k] == ")":
            depth += 1
        elif head[k] == "(":
            depth -= 1
            if depth == 0:
                # skip an initialiser list: keep looking if this paren belongs to one
                m = NAME_RE.search(head[: k + 1])
                if m:
                    before = head[: m.start()].rstrip()
                    if before.endswith(":") and not before.endswith("::") or before.endswith(","):
                        continue
                    return m.group(1).strip()
    return "?"


def long_functions(path, limit):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = blank_preprocessor(blank_comments_and_strings(f.read()))
    results = []
    # stack of ("scope" | "func" | "block", start_index)
    stack = []
    last = 0  # start of the current statement head
    for i, c in enumerate(text):
        if c == "{":
            head = text[last:i]
            in_func = any(entry[0] == "func" for entry in stack)
            if in_func:
                stack.append(("block", i))
            elif SCOPE_RE.search(head.strip()) or re.search(r"\bextern\s+\"?\s*$", head):
                stack.append(("scope", i))
            elif FUNC_TAIL_RE.search(head.rstrip()) or re.search(r"\)\s*$", head):
                stack.append(("func", i, function_name(re.sub(r"\s+", " ", head).strip())))
            else:
                stack.append(("block", i))  # initialiser braces, lambdas at namespace scope
            last = i + 1
        elif c == "}":
            if stack:
                entry = stack.pop()
                if entry[0] == "func":
                    first = text.count("\n", 0, entry[1]) + 1
                    end = text.count("\n", 0, i) + 1
                    if end - first + 1 > limit:
                        results.append((first, entry[2], end - first + 1))
            last = i + 1
        elif c == ";":
            last = i + 1
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max", type=int, default=80, help="longest allowed body, lines")
    parser.add_argument("paths", nargs="*", default=["src", "apps"])
    args = parser.parse_args()
    files = []
    for p in args.paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in names if n.endswith(EXTENSIONS)]
        else:
            files.append(p)
    found = 0
    for path in sorted(files):
        for line, name, count in long_functions(path, args.max):
            if any(path.endswith(p) and name.split("::")[-1] == f for p, f in ALLOWED):
                continue
            print(f"{path}:{line}: {name}: {count} lines")
            found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
