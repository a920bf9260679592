"""Write each role's README.md from its meta/argument_specs.yml, so the two never drift.

Usage: python scripts/role_docs.py [--check] [ROLE_DIR ...]   (default: every directory under roles/)
With --check, writes nothing and exits 1 when a README differs from what would be written.
"""

import argparse
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROLES = os.path.join(os.path.dirname(HERE), "roles")


def _lines(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _cell(text):
    # Ansible doc markup (C(), O(), M(), V(), RV()) becomes Markdown code.
    text = re.sub(r"\b(?:C|O|M|V|RV)\(([^)]*)\)", r"`\1`", " ".join(str(text).split()))
    return text.replace("|", "\\|")


def render(role_name, specs):
    out = []
    for entry_name, entry in sorted(specs["argument_specs"].items()):
        title = "hardened.openresty.%s" % role_name
        if entry_name != "main":
            title += " (entry point `%s`)" % entry_name
        out.append("# %s" % title)
        out.append("")
        out.append(entry.get("short_description", ""))
        out.append("")
        for paragraph in _lines(entry.get("description")):
            out.append("- " + _cell(paragraph))
        out.append("")
        out.append("## Variables")
        out.append("")
        out.append("| Variable | Type | Default | Description |")
        out.append("|---|---|---|---|")
        for name, option in sorted(entry.get("options", {}).items()):
            kind = option.get("type", "str")
            if kind == "list" and option.get("elements"):
                kind = "list of %s" % option["elements"]
            if option.get("choices"):
                kind += " (%s)" % ", ".join(str(c) for c in option["choices"])
            if option.get("required"):
                default = "required"
            else:
                default = "`%s`" % yaml.safe_dump(option.get("default"), default_flow_style=True).strip().replace(
                    "\n...", "").strip() if "default" in option else ""
            description = " ".join(_cell(line) for line in _lines(option.get("description")))
            out.append("| `%s` | %s | %s | %s |" % (name, kind, _cell(default), description))
        out.append("")
    out.append("<!-- Generated from meta/argument_specs.yml by scripts/role_docs.py; edit the spec, not this file. -->")
    return "\n".join(out) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("roles", nargs="*")
    args = parser.parse_args(argv)
    role_dirs = args.roles or [os.path.join(ROLES, name) for name in sorted(os.listdir(ROLES))]
    stale = []
    for role_dir in role_dirs:
        spec_path = os.path.join(role_dir, "meta", "argument_specs.yml")
        if not os.path.exists(spec_path):
            stale.append("%s: no meta/argument_specs.yml" % role_dir)
            continue
        with open(spec_path) as handle:
            text = render(os.path.basename(role_dir.rstrip("/")), yaml.safe_load(handle))
        readme = os.path.join(role_dir, "README.md")
        current = open(readme).read() if os.path.exists(readme) else None
        if current != text:
            if args.check:
                stale.append("%s is not generated from its argument spec" % readme)
            else:
                with open(readme, "w") as handle:
                    handle.write(text)
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
