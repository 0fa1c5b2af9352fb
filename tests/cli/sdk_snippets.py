#!/usr/bin/python3
"""platform.sdk_snippets: every ```cpp block of sdk/README.md compiles
(-fsyntax-only) with the flags an in-tree plugin is built with, and an option
member of a type the schema does not support stops the compilation with the
schema's static_assert message (not an opaque incomplete-type error).

usage: sdk_snippets.py README.md BUILD_DIR PLUGIN_SOURCE WORK_DIR
  PLUGIN_SOURCE: a plugin .cpp whose compile_commands.json entry gives the flags.
"""
import json
import os
import re
import shlex
import subprocess
import sys

readme, build_dir, plugin_source, work = sys.argv[1:5]
os.makedirs(work, exist_ok=True)

entries = json.load(open(os.path.join(build_dir, "compile_commands.json")))
entry = next((e for e in entries if os.path.realpath(e["file"]) == os.path.realpath(plugin_source)), None)
if entry is None:
    sys.exit(f"no compile_commands.json entry for {plugin_source}")
args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
flags, skip = [], 0
for a in args[1:]:
    if skip:
        skip -= 1
        continue
    if a in ("-o", "-c", "-include", "-MF", "-MT", "-MQ"):
        skip = 1  # the flag and its value: output, source, PCH
        continue
    if a in ("-MD", "-MMD", "-Winvalid-pch") or a == entry["file"]:
        continue
    flags.append(a)
compiler = args[0]


def compile_snippet(name, code):
    path = os.path.join(work, name)
    with open(path, "w") as f:
        f.write(code)
    r = subprocess.run([compiler, *flags, "-fsyntax-only", path], cwd=entry["directory"], capture_output=True,
                       text=True)
    return r.returncode, r.stderr


text = open(readme).read()
blocks = re.findall(r"^```cpp\n(.*?)^```", text, flags=re.S | re.M)
if not blocks:
    sys.exit(f"{readme}: no ```cpp block found")
failed = 0
for i, code in enumerate(blocks):
    rc, err = compile_snippet(f"snippet_{i}.cpp", code)
    first = code.strip().splitlines()[0]
    print(f"snippet {i} ({first[:60]}): {'OK' if rc == 0 else 'FAILED'}")
    if rc != 0:
        failed += 1
        print(err[-4000:])

# int is not an option type: the static_assert must say what is.
rc, err = compile_snippet("unsupported_member.cpp", """#include <qsdk/schema.hpp>
struct O { int bits = 2; };
auto s = qsdk::Schema<O>("x").field("bits", &O::bits, "bit width");
""")
if rc == 0:
    failed += 1
    print("unsupported member type compiled: expected the schema's static_assert")
elif "unsupported option member type. Use bool, int64_t (not int)" not in err:
    failed += 1
    print("unsupported member type failed without the static_assert message:\n" + err[-3000:])
else:
    print("unsupported member type: static_assert message OK")
sys.exit(1 if failed else 0)
