"""The project's own policy for Dockerfile and docker-compose.yml, checked statically.

No Docker engine runs on the build machines, so these files are never built here. hadolint and
the compose JSON schema check syntax and common mistakes; this script checks what the project
promises about them: a multi-stage build, a slim non-root runtime holding only the binaries and
what they need, and credentials that come only from the environment.

Usage: python scripts/check_containers.py [ROOT]   (exit 1 if any check fails)
"""

import re
import subprocess
import sys
from pathlib import Path

from dockerfile_parse import DockerfileParser
from ruamel.yaml import YAML

# What the runtime stage may hold, by file name.
RUNTIME_FILES = {"qcnn", "qcnn-quantize", "config.yaml", "init.sql"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|DATABASE_URL", re.IGNORECASE)
# `scheme://user:password@` where the password is not a `${VAR}` interpolation.
LITERAL_URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?!\$\{)[^@\s]+@")
INTERPOLATION_ONLY = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?][^}]*)?\}$")


class Checks:
    def __init__(self):
        self.failed = 0

    def check(self, ok, what):
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
        self.failed += not ok


def split_stages(structure):
    """Instructions grouped by FROM; comments dropped."""
    stages = []
    for instr in structure:
        if instr["instruction"] == "FROM":
            stages.append([instr])
        elif stages and instr["instruction"] != "COMMENT":
            stages[-1].append(instr)
    return stages


def copy_flags_and_sources(value):
    words = value.split()
    flags = [w for w in words if w.startswith("--")]
    paths = [w for w in words if not w.startswith("--")]
    return flags, paths[:-1]


def check_dockerfile(path, c):
    stages = split_stages(DockerfileParser(str(path)).structure)
    c.check(len(stages) >= 2, f"{path.name}: multi-stage ({len(stages)} stages)")
    if not stages:
        return
    builder_image = stages[0][0]["value"].split()[0]
    c.check(builder_image.startswith("rust:"), f"{path.name}: builds with the Rust toolchain ({builder_image})")

    final = stages[-1]
    final_image = final[0]["value"].split()[0]
    c.check("slim" in final_image or "distroless" in final_image, f"{path.name}: slim runtime image ({final_image})")

    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    last_user = users[-1] if users else "root (no USER)"
    c.check(last_user not in ("root", "0", "root (no USER)"), f"{path.name}: runtime runs as non-root user {last_user}")

    stage_names = {s[0]["value"].split()[-1] for s in stages[:-1]}
    for instr in final:
        if instr["instruction"] not in ("COPY", "ADD"):
            continue
        flags, sources = copy_flags_and_sources(instr["value"])
        names = {Path(s).name or s for s in sources}
        from_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        c.check(
            instr["instruction"] == "COPY" and names <= RUNTIME_FILES and (from_stage is None or from_stage in stage_names),
            f"{path.name}:{instr['startline'] + 1}: runtime copies only {sorted(RUNTIME_FILES)} (got {sorted(names)})",
        )

    baked = []
    for stage in stages:
        for instr in stage:
            if instr["instruction"] in ("ENV", "ARG") and SECRET_NAME.search(instr["value"]) and "=" in instr["value"]:
                baked.append(f"line {instr['startline'] + 1}: {instr['instruction']} {instr['value'].split('=')[0]}")
    c.check(not baked, f"{path.name}: no credentials baked in via ENV/ARG {baked or ''}".rstrip())


def check_compose(path, root, c):
    compose = YAML(typ="safe").load(path.read_text())
    services = compose.get("services", {})
    postgres, harness = services.get("postgres"), services.get("harness")
    c.check(postgres is not None and harness is not None, f"{path.name}: services postgres and harness")
    if postgres is None or harness is None:
        return

    c.check(str(postgres.get("image", "")).startswith("postgres:"), f"{path.name}: postgres runs the postgres image")
    init_mounts = [v for v in postgres.get("volumes", []) if "init.sql:/docker-entrypoint-initdb.d/" in str(v)]
    c.check(bool(init_mounts) and (root / "init.sql").is_file(), f"{path.name}: postgres is initialised from init.sql")
    c.check("build" in harness, f"{path.name}: harness is built from the Dockerfile")
    c.check("postgres" in harness.get("depends_on", {}), f"{path.name}: harness waits for postgres")
    c.check("DATABASE_URL" in harness.get("environment", {}), f"{path.name}: harness gets DATABASE_URL")

    literal = []
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if "PASSWORD" in key.upper() and not INTERPOLATION_ONLY.match(value):
                literal.append(f"{name}.{key}")
            if LITERAL_URL_PASSWORD.search(value):
                literal.append(f"{name}.{key}")
    c.check(not literal, f"{path.name}: passwords only from the environment {literal or ''}".rstrip())

    ignored = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", ".env"]).returncode == 0
    c.check(ignored, ".env (compose's credentials file) is git-ignored")


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    c = Checks()
    check_dockerfile(root / "Dockerfile", c)
    check_compose(root / "docker-compose.yml", root, c)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
