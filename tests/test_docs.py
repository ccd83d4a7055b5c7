"""test_docs: the documentation cannot drift from the program.

(a) docs/config.md is exactly the output of `infomax config --reference`;
(b) every configs/*.yaml validates with `infomax config --check FILE`;
(c) every `section.key` mentioned in docs/*.md and README.md is a key of the
    reference table;
(d) every command the usage lists has its own `infomax COMMAND --help` (exit 0,
    the same as `infomax help COMMAND`); every --option a help text lists is one
    the command line accepts; every --option the docs write after
    `infomax COMMAND` is listed by that command's --help; and the section of
    docs/guide.md on each command mentions exactly the --options of its --help;
(e) every relative link in the docs names a file that exists, and a heading of
    it when it has a #fragment.

Standard library only. Usage (from tests/): python3 test_docs.py PATH/TO/infomax
Prints PASSED/FAILED lines; exits 0 (pass) or 1 (fail).
"""
import difflib
import glob
import os
import re
import sys

from clitest import ROOT, check, finish, run

# "objective.c", "data.h", "config.md": file names, not keys.
FILE_SUFFIXES = {"c", "h", "md", "py", "yaml", "yml", "npy", "h5", "json", "jsonl", "txt", "gz", "sh",
                 "build", "tmp"}

# (a) The reference page is generated, never edited by hand.
code, reference, err = run(["config", "--reference"])
check(code == 0 and reference.startswith("# Configuration reference"),
      "infomax config --reference exits 0 (exit %d%s)" % (code, ": " + err.strip() if err.strip() else ""))
config_md = os.path.join(ROOT, "docs", "config.md")
try:
    with open(config_md) as f:
        committed = f.read()
except OSError as e:
    committed = None
    check(False, "docs/config.md is readable: %s" % e)
if committed is not None:
    same = committed == reference
    if not same:
        diff = difflib.unified_diff(committed.splitlines(keepends=True),
                                    reference.splitlines(keepends=True),
                                    "docs/config.md", "infomax config --reference")
        sys.stdout.writelines(diff)
        print()
    check(same, "docs/config.md equals `infomax config --reference`"
          + ("" if same else "; regenerate it with: build/infomax config --reference > docs/config.md"))

# The keys of the reference table, as "section.key"; the sections are its "## name" headings.
keys = set()
sections = []
section = None
for line in reference.splitlines():
    m = re.match(r"^## (\w+)\s*$", line)
    if m:
        section = m.group(1)
        sections.append(section)
        continue
    m = re.match(r"^\| `([A-Za-z0-9_]+)` \|", line)
    if m and section:
        keys.add(section + "." + m.group(1))
check(len(keys) > 0 and set(sections) == {k.split(".")[0] for k in keys},
      "reference table parsed: %d keys in sections %s" % (len(keys), ", ".join(sections)))

# (b) Every shipped configuration validates.
configs = sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml")))
check(len(configs) > 0, "configs/*.yaml: %d files" % len(configs))
for path in configs:
    code, out, err = run(["config", "--check", path])
    check(code == 0, "infomax config --check configs/%s: exit %d%s"
          % (os.path.basename(path), code, (": " + err.strip()) if code else ""))

# (c) Every section.key named in the docs is a real key.
mention = re.compile(r"(?<![\w./-])(%s)\.([A-Za-z_][A-Za-z0-9_]*)(?![\w-])"
                     % "|".join(re.escape(s) for s in sections or ["data"]))
docs = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
readme = os.path.join(ROOT, "README.md")
if os.path.exists(readme):
    docs.append(readme)
seen, unknown = 0, []
for path in docs:
    with open(path) as f:
        json_keys = False  # the guide's tables of summary.json and metrics.jsonl keys
        for lineno, line in enumerate(f, 1):
            if line.startswith("#"):
                json_keys = "summary.json" in line or "metrics.jsonl" in line
            if json_keys:
                continue
            for m in mention.finditer(line):
                if m.group(2) in FILE_SUFFIXES:
                    continue
                seen += 1
                name = m.group(1) + "." + m.group(2)
                if name not in keys:
                    unknown.append("%s:%d: %s" % (os.path.relpath(path, ROOT), lineno, name))
check(seen > 0, "found %d section.key mentions in %s" % (seen, ", ".join(os.path.relpath(p, ROOT) for p in docs)))
check(not unknown, "every section.key mentioned in the docs is in the reference table"
      + ("" if not unknown else "; unknown:\n  " + "\n  ".join(unknown)))


# (d) --help for every command, and the docs name the options it lists.
OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*")
code, usage, err = run(["--help"])
check(code == 0 and usage.startswith("usage:"), "infomax --help exits 0 with the usage (exit %d)" % code)
commands = []
in_commands = False
for line in usage.splitlines():
    if line.rstrip().endswith(":"):
        in_commands = line.strip() == "commands:"
        continue
    m = re.match(r"^  ([a-z]+)\b", line)
    if in_commands and m and m.group(1) not in commands:
        commands.append(m.group(1))
check(len(commands) >= 5, "the usage lists the commands: " + ", ".join(commands))


def listed(text):
    """The --options a help text lists: in its usage lines (up to the first blank
    line) and on lines that start with the option (its option table)."""
    head = text.split("\n\n")[0]
    table = [l for l in text.splitlines() if re.match(r"^\s+--[a-z]", l)]
    return set(OPTION.findall(head)) | {OPTION.findall(l)[0] for l in table}


general = listed(usage)
helps = {}
for c in commands:
    code, text, err = run([c, "--help"])
    helps[c] = text
    check(code == 0 and text.startswith("usage:") and ("infomax " + c) in text and text != usage,
          "infomax %s --help exits 0 with its own usage (exit %d%s)" % (c, code, err.strip()[:200]))
    code2, text2, _ = run(["help", c])
    check(code2 == 0 and text2 == text, "infomax help %s prints the same as infomax %s --help" % (c, c))
    for opt in sorted(listed(text) - {"--help"}):
        code3, _, err3 = run([c, opt, "x", "--help"])
        check(code3 == 0, "infomax %s --help lists %s, and the command line accepts it (exit %d%s)"
              % (c, opt, code3, (": " + err3.strip()) if code3 else ""))
code, _, err = run(["nosuch", "--help"])
check(code == 2 and "unknown command" in err, "infomax nosuch --help: exit 2, unknown command")

# Options written after `infomax COMMAND` anywhere in the docs (code blocks with
# their continuation lines, and inline code) must be options of that command.
invocation = re.compile(r"infomax (%s)\b(.*)" % "|".join(commands))
wrong = []
for path in docs:
    with open(path) as f:
        lines = f.read().split("\n")
    bad_usage = False  # inside a block of a usage-error example (<!-- example: exit 2 -->)
    for i, line in enumerate(lines):
        if line.startswith("```"):
            bad_usage = not bad_usage and i > 0 and "example: exit 2" in lines[i - 1]
            continue
        if bad_usage:
            continue
        for m in invocation.finditer(line):
            rest = m.group(2)
            j = i
            while rest.rstrip().endswith("\\") and j + 1 < len(lines):
                j += 1
                rest += " " + lines[j]
            rest = rest.split("`")[0] if "`" in line[:m.start()] else rest.split("#")[0]
            for opt in OPTION.findall(rest):
                if opt not in listed(helps.get(m.group(1), "")) and opt not in general:
                    wrong.append("%s:%d: infomax %s ... %s" % (os.path.relpath(path, ROOT), i + 1,
                                                                 m.group(1), opt))
check(not wrong, "every --option the docs give a command is in its --help"
      + ("" if not wrong else "; not listed:\n  " + "\n  ".join(wrong)))

# The guide's section on each command names exactly the options of its --help.
guide = os.path.join(ROOT, "docs", "guide.md")
sections_text, current = {}, None
with open(guide) as f:
    for line in f:
        h = re.match(r"^#+ `infomax (\w+)`", line)
        if h or line.startswith("#"):
            current = h.group(1) if h else None
            continue
        if current:
            sections_text[current] = sections_text.get(current, "") + line
for c in commands:
    named = set(OPTION.findall(sections_text.get(c, "")))
    want = listed(helps[c]) - {"--help"}
    check(c in sections_text and named == want,
          "docs/guide.md's section on infomax %s names the options of its --help (%s)%s"
          % (c, " ".join(sorted(want)) or "none",
             "" if named == want else "; the section names: %s" % (" ".join(sorted(named)) or "none")))
    # Settings a help lists as "  word=VALUE" lines (bench: evals=5, ...).
    settings = set(re.findall(r"^  ([a-z]+)=", helps[c], re.M))
    missing = sorted(w for w in settings if (w + "=") not in sections_text.get(c, ""))
    if settings:
        check(not missing, "docs/guide.md's section on infomax %s names its settings %s%s"
              % (c, " ".join(sorted(w + "=" for w in settings)),
                 "" if not missing else "; missing: " + " ".join(missing)))

# (e) Relative links and their #fragments (GitHub's heading slugs).
def slug(heading):
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return h.replace(" ", "-")


anchors = {}


def anchors_of(path):
    if path not in anchors:
        with open(path) as f:
            anchors[path] = {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", f.read(), re.M)}
    return anchors[path]


broken, nlinks = [], 0
for path in docs:
    with open(path) as f:
        text = f.read()
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):
            continue
        nlinks += 1
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        where = "%s:%d: %s" % (os.path.relpath(path, ROOT), text[:m.start()].count("\n") + 1, target)
        if not os.path.exists(dest):
            broken.append(where + " (no such file)")
        elif frag and dest.endswith(".md") and frag not in anchors_of(dest):
            broken.append(where + " (no such heading)")
check(nlinks > 0 and not broken, "%d relative links in the docs lead to existing files and headings%s"
      % (nlinks, "" if not broken else "; broken:\n  " + "\n  ".join(broken)))

finish()
