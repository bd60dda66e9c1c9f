#!/usr/bin/python3
"""Generate calibd's Python protobuf/gRPC stubs into the private subpackage ``calibd._proto``.

Usage: gen_proto.py PROTO_DIR PACKAGE_DIR [--protoc PROTOC] [--plugin GRPC_PYTHON_PLUGIN]

PROTO_DIR is the repository's ``proto/`` folder (holding ``calibd/v1/*.proto`` and
``grpc/health/v1/health.proto``); PACKAGE_DIR is the ``calibd`` package folder to write
``_proto/`` into. protoc writes ``from calibd.v1 import types_pb2`` and ``from grpc.health.v1 import
...``; those imports are rewritten to ``from calibd._proto import ...`` so the stubs never shadow a
top-level ``grpc`` package and work both installed and from the build tree. Used by
client/python/CMakeLists.txt at build time and by setup.py when pip builds the package.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

# Every calibd/v1/*.proto of PROTO_DIR (a service added to the API gets its stubs without an
# edit here), plus the health service.
HEALTH = "grpc/health/v1/health.proto"


def protos(proto_dir: str) -> list:
    api = sorted(f"calibd/v1/{n}" for n in os.listdir(os.path.join(proto_dir, "calibd", "v1"))
                 if n.endswith(".proto"))
    return api + [HEALTH]

_IMPORT = re.compile(r"^from (calibd\.v1|grpc\.health\.v1) import (\w+_pb2)", re.M)


def generate(proto_dir: str, package_dir: str, protoc: str = "protoc",
             plugin: str = "/usr/bin/grpc_python_plugin") -> None:
    out = os.path.join(package_dir, "_proto")
    files = protos(proto_dir)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([protoc, f"--proto_path={proto_dir}", f"--python_out={tmp}",
                        f"--grpc_python_out={tmp}", f"--plugin=protoc-gen-grpc_python={plugin}"]
                       + [os.path.join(proto_dir, p) for p in files], check=True)
        os.makedirs(out, exist_ok=True)
        names = []
        for proto in files:
            stem = proto[:-len(".proto")]
            for suffix in ("_pb2.py", "_pb2_grpc.py"):
                src = os.path.join(tmp, stem + suffix)
                with open(src, encoding="utf-8") as f:
                    text = _IMPORT.sub(r"from calibd._proto import \2", f.read())
                name = os.path.basename(stem) + suffix
                names.append(name)
                dst = os.path.join(out, name)
                # Rewrite only on change so the build tree's timestamps stay quiet.
                old = None
                if os.path.exists(dst):
                    with open(dst, encoding="utf-8") as f:
                        old = f.read()
                if old != text:
                    with open(dst + ".tmp", "w", encoding="utf-8") as f:
                        f.write(text)
                    os.replace(dst + ".tmp", dst)
        init = os.path.join(out, "__init__.py")
        if not os.path.exists(init):
            with open(init, "w", encoding="utf-8") as f:
                f.write('"""Generated protobuf and gRPC stubs of calibd.v1 (private)."""\n')


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("proto_dir")
    ap.add_argument("package_dir")
    ap.add_argument("--protoc", default=shutil.which("protoc") or "protoc")
    ap.add_argument("--plugin", default=shutil.which("grpc_python_plugin")
                    or "/usr/bin/grpc_python_plugin")
    a = ap.parse_args()
    generate(a.proto_dir, a.package_dir, a.protoc, a.plugin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
